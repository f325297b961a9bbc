"""A small consortium CA and per-site certificates, for trying mutual TLS out.

`make_consortium_certificates` writes `ca.pem`/`ca.key` and a certificate and key
per site (`<site>.pem`, `<site>.key`), each valid for the given host names and
signed by the CA, usable both as a TLS server (a hospital) and as a client
(the coordinator). A real consortium would issue these from its own PKI; the
files are the same kind. `check_certificate` refuses an expired or not yet valid
certificate, or one the CA did not sign, before anything starts.
"""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tff_med.errors import ConfigError


def _name(common_name: str) -> x509.Name:
  return x509.Name(
    [
      x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'tff_med consortium'),
      x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ]
  )


def _write(path: str, data: bytes, private: bool = False) -> None:
  with open(path, 'wb') as f:
    f.write(data)
  if private:
    os.chmod(path, 0o600)


def _key_bytes(key) -> bytes:
  return key.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
  )


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
  names = []
  for host in hosts:
    try:
      names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
      names.append(x509.DNSName(host))
  return x509.SubjectAlternativeName(names)


def make_consortium_certificates(
  out_dir: str,
  sites: list[str],
  *,
  hosts: dict[str, list[str]] | None = None,
  valid_days: int = 365,
  not_before: datetime.datetime | None = None,
) -> dict[str, str]:
  """Writes a CA and one certificate per site under `out_dir`; returns {site: cert path}.

  Args:
    out_dir: Output directory (created).
    sites: Site names, e.g. the hospitals and 'coordinator'.
    hosts: Host names or IPs each site's certificate is valid for
      (default: localhost and 127.0.0.1).
    valid_days: Validity of every certificate.
    not_before: Start of validity (default: now); tests pass a past date to make
      an expired certificate.
  """
  os.makedirs(out_dir, exist_ok=True)
  start = not_before or datetime.datetime.now(datetime.timezone.utc)
  end = start + datetime.timedelta(days=valid_days)
  ca_key = ec.generate_private_key(ec.SECP256R1())
  ca_cert = (
    x509.CertificateBuilder()
    .subject_name(_name('tff_med consortium CA'))
    .issuer_name(_name('tff_med consortium CA'))
    .public_key(ca_key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(start)
    .not_valid_after(end)
    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    .sign(ca_key, hashes.SHA256())
  )
  _write(os.path.join(out_dir, 'ca.pem'), ca_cert.public_bytes(serialization.Encoding.PEM))
  _write(os.path.join(out_dir, 'ca.key'), _key_bytes(ca_key), private=True)
  paths = {}
  for site in sites:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
      x509.CertificateBuilder()
      .subject_name(_name(site))
      .issuer_name(ca_cert.subject)
      .public_key(key.public_key())
      .serial_number(x509.random_serial_number())
      .not_valid_before(start)
      .not_valid_after(end)
      .add_extension(_san((hosts or {}).get(site, ['localhost', '127.0.0.1'])), critical=False)
      .add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
        critical=False,
      )
      .sign(ca_key, hashes.SHA256())
    )
    paths[site] = os.path.join(out_dir, f'{site}.pem')
    _write(paths[site], cert.public_bytes(serialization.Encoding.PEM))
    _write(os.path.join(out_dir, f'{site}.key'), _key_bytes(key), private=True)
  return paths


def check_certificate(cert_path: str, ca_path: str, *, who: str) -> None:
  """Refuses a certificate that is expired, not yet valid, or not signed by the CA.

  Raises:
    ConfigError: Naming `who`, the file and what is wrong.
  """
  for path in (cert_path, ca_path):
    if not os.path.isfile(path):
      raise ConfigError(f'{who}: certificate file {path} does not exist')
  with open(cert_path, 'rb') as f:
    cert = x509.load_pem_x509_certificate(f.read())
  with open(ca_path, 'rb') as f:
    ca = x509.load_pem_x509_certificate(f.read())
  now = datetime.datetime.now(datetime.timezone.utc)
  if now > cert.not_valid_after_utc:
    raise ConfigError(
      f'{who}: certificate {cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d}'
    )
  if now < cert.not_valid_before_utc:
    raise ConfigError(
      f'{who}: certificate {cert_path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}'
    )
  try:
    cert.verify_directly_issued_by(ca)
  except (ValueError, TypeError, InvalidSignature) as e:
    raise ConfigError(
      f'{who}: certificate {cert_path} was not signed by the consortium CA {ca_path} '
      f'({e or type(e).__name__})'
    ) from e
