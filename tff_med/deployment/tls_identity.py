"""Who is who under mutual TLS: the consortium's files, and the roles its certificates carry.

Every certificate is signed by the consortium CA, so the chain alone says only
"a member". Roles come from the certificate: the coordinator's carries its
common name and a client-only key usage; a hospital's carries the hospital's
name (common name and a DNS name) and a server-only key usage. The gate admits
only the coordinator (`peer_problem`); the coordinator pins each hospital's
name to its address (`federation.RemoteFederation`), so another member's
certificate for the same host does not pass.
"""

from __future__ import annotations

import dataclasses

import grpc
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tff_med.deployment import certificates
from tff_med.errors import ConfigError


def _read(path: str) -> bytes:
  with open(path, 'rb') as f:
    return f.read()


@dataclasses.dataclass(frozen=True)
class TlsFiles:
  """A site's certificate and key, the consortium CA, and optionally its revocation list."""

  cert: str
  key: str
  ca: str
  crl: str = ''

  def check(self, who: str) -> None:
    """Refuses an expired or foreign certificate before anything connects."""
    certificates.check_certificate(self.cert, self.ca, who=who)

  def channel_credentials(self) -> grpc.ChannelCredentials:
    """The coordinator's side: present our certificate, trust only the CA."""
    return grpc.ssl_channel_credentials(_read(self.ca), _read(self.key), _read(self.cert))

  def server_credentials(self) -> grpc.ServerCredentials:
    """A hospital's side: present our certificate, require one the CA signed."""
    return grpc.ssl_server_credentials(
      [(_read(self.key), _read(self.cert))],
      root_certificates=_read(self.ca),
      require_client_auth=True,
    )


def _usages(cert: x509.Certificate) -> set:
  try:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
  except x509.ExtensionNotFound:
    return set()


def peer_problem(auth_context: dict, coordinator: str, crl=None) -> str | None:
  """Why the TLS peer is not the coordinator (or is revoked by `crl`), or None if it is."""
  pem = (auth_context.get('x509_pem_cert') or [b''])[0]
  if not pem:
    return 'it presented no certificate'
  cert = x509.load_pem_x509_certificate(pem)
  names = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
  name = names[0].value if names else '?'
  if name != coordinator:
    return f'its certificate is for {name!r}, not the coordinator {coordinator!r}'
  if _usages(cert) != {ExtendedKeyUsageOID.CLIENT_AUTH}:
    return f'the certificate of {name!r} is not a client-only (coordinator) certificate'
  if crl is not None and crl.get_revoked_certificate_by_serial_number(cert.serial_number):
    return f'the certificate of {name!r} (serial {cert.serial_number:x}) is revoked'
  return None


def check_names(cert_path: str, hospitals: list[str]) -> None:
  """Raises ConfigError unless the hospital certificate names every hospital it serves."""
  with open(cert_path, 'rb') as f:
    cert = x509.load_pem_x509_certificate(f.read())
  try:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(san.get_values_for_type(x509.DNSName))
  except x509.ExtensionNotFound:
    names = set()
  missing = [h for h in hospitals if h not in names]
  if missing:
    raise ConfigError(
      f'hospital worker: certificate {cert_path} does not name {missing} (its names: '
      f'{sorted(names)}); the coordinator accepts a hospital only under its own name'
    )
  if ExtendedKeyUsageOID.SERVER_AUTH not in _usages(cert):
    raise ConfigError(f'hospital worker: certificate {cert_path} is not a server certificate')
