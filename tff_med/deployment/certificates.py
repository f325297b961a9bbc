"""A small consortium CA and per-site certificates, for trying mutual TLS out.

`make_consortium_certificates` writes `ca.pem`, the CA's key in its own
`ca-private/` directory (keep it offline), and a certificate and key per site
(`<site>.pem`, `<site>.key`) signed by the CA. Roles are in the certificates:
the coordinator's is client-only; a hospital's is server-only and names the
hospital (common name and DNS name, beside the host names), so the coordinator
can pin each hospital's identity to its address (`tls_identity.py`). Keys are
created 0600 and never through a symbolic link. A real consortium would issue
these from its own PKI; the files are the same kind. `check_certificate` refuses an expired or not yet valid
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
  """Writes `path`, refusing a symbolic link there; a private file is 0600 from its creation."""
  flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
  try:
    fd = os.open(path, flags, 0o600 if private else 0o644)
  except OSError as e:
    raise ConfigError(f'cannot write {path}: {e.strerror} (a symbolic link is refused)') from e
  with os.fdopen(fd, 'wb') as f:
    if private:
      os.fchmod(f.fileno(), 0o600)
    f.write(data)


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
  coordinator: str = 'coordinator',
  hosts: dict[str, list[str]] | None = None,
  valid_days: int = 365,
  not_before: datetime.datetime | None = None,
) -> dict[str, str]:
  """Writes a CA and one certificate per site under `out_dir`; returns {site: cert path}.

  Args:
    out_dir: Output directory (created).
    sites: Site names, e.g. the hospitals and 'coordinator'.
    coordinator: The site that gets the client-only coordinator certificate.
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
  private_dir = os.path.join(out_dir, 'ca-private')
  os.makedirs(private_dir, mode=0o700, exist_ok=True)
  _write(os.path.join(private_dir, 'ca.key'), _key_bytes(ca_key), private=True)
  paths = {}
  for site in sites:
    names = (hosts or {}).get(site, ['localhost', '127.0.0.1'])
    if site == coordinator:
      usage = ExtendedKeyUsageOID.CLIENT_AUTH
    else:
      usage, names = ExtendedKeyUsageOID.SERVER_AUTH, [site, *names]
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
      x509.CertificateBuilder()
      .subject_name(_name(site))
      .issuer_name(ca_cert.subject)
      .public_key(key.public_key())
      .serial_number(x509.random_serial_number())
      .not_valid_before(start)
      .not_valid_after(end)
      .add_extension(_san(names), critical=False)
      .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
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
  check_issued(cert, ca, who=who, what=f'certificate {cert_path}', ca_path=ca_path)


def check_issued(
  cert: x509.Certificate, ca: x509.Certificate, *, who: str, what: str, ca_path: str
):
  """Refuses `cert` (`what`, for messages) if it is not valid now or not signed by `ca`.

  Raises:
    ConfigError: Naming `who`, `what` and what is wrong.
  """
  now = datetime.datetime.now(datetime.timezone.utc)
  if now > cert.not_valid_after_utc:
    raise ConfigError(f'{who}: {what} expired on {cert.not_valid_after_utc:%Y-%m-%d}')
  if now < cert.not_valid_before_utc:
    raise ConfigError(f'{who}: {what} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}')
  try:
    cert.verify_directly_issued_by(ca)
  except (ValueError, TypeError, InvalidSignature) as e:
    raise ConfigError(
      f'{who}: {what} was not signed by the consortium CA {ca_path} ({e or type(e).__name__})'
    ) from e


def write_revocation_list(out_path: str, ca_cert: str, ca_key: str, revoked: list[str]) -> None:
  """Writes a CRL (PEM), signed by the CA, revoking the certificates at `revoked`."""
  with open(ca_cert, 'rb') as f:
    ca = x509.load_pem_x509_certificate(f.read())
  with open(ca_key, 'rb') as f:
    key = serialization.load_pem_private_key(f.read(), password=None)
  now = datetime.datetime.now(datetime.timezone.utc)
  builder = (
    x509.CertificateRevocationListBuilder()
    .issuer_name(ca.subject)
    .last_update(now)
    .next_update(now + datetime.timedelta(days=30))
  )
  for path in revoked:
    with open(path, 'rb') as f:
      serial = x509.load_pem_x509_certificate(f.read()).serial_number
    builder = builder.add_revoked_certificate(
      x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
    )
  _write(out_path, builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def load_revocation_list(crl_path: str, ca_path: str) -> x509.CertificateRevocationList:
  """Reads a CRL and checks the consortium CA signed it.

  Raises:
    ConfigError: Unreadable, or not signed by the CA.
  """
  try:
    with open(crl_path, 'rb') as f:
      crl = x509.load_pem_x509_crl(f.read())
    with open(ca_path, 'rb') as f:
      ca = x509.load_pem_x509_certificate(f.read())
  except (OSError, ValueError) as e:
    raise ConfigError(f'revocation list {crl_path} cannot be read: {e}') from e
  if not crl.is_signature_valid(ca.public_key()):
    raise ConfigError(f'revocation list {crl_path} was not signed by the consortium CA {ca_path}')
  return crl
