"""Hospitals' secure-aggregation keys: made at the hospital, published signed, checked by peers.

Each hospital makes its X25519 key pair itself (`make_key`); the private key
never leaves its machine. Its public key is published in a file signed with
the hospital's TLS key (ECDSA, P-256 from `experiments.make_certificates` or
the consortium's PKI) and carrying its certificate, so the coordinator, which
relays the files to every hospital, cannot swap in a key of its own: a peer
accepts a public key only if the certificate was signed by the consortium CA,
names that hospital, and the signature over (protocol, hospital, key) holds
(`load_public_keys`). Ours: TFF has no key exchange.
"""

from __future__ import annotations

import base64
import json
import os

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from tff_med.deployment import certificates
from tff_med.errors import ConfigError
from tff_med.learning.secure import masks

PUBLIC_SUFFIX = '.mask.pub.json'
PRIVATE_SUFFIX = '.mask.key'


def _message(hospital: str, raw: bytes) -> bytes:
  return b'\0'.join([masks.PROTOCOL.encode(), b'public mask key', hospital.encode(), raw])


def make_key(hospital: str, out_dir: str, tls_cert: str, tls_key: str) -> tuple[str, str]:
  """Makes `hospital`'s key pair in `out_dir`; returns (private key path, public key path).

  The public file is signed with the hospital's TLS key (`tls_key`, EC) and
  carries its certificate (`tls_cert`), which must name the hospital.

  Raises:
    ConfigError: A missing file, a TLS key that is not EC, a certificate not
      naming the hospital or not matching the key.
  """
  for path in (tls_cert, tls_key):
    if not os.path.isfile(path):
      raise ConfigError(f'hospital {hospital!r}: TLS file {path} does not exist')
  with open(tls_cert, 'rb') as f:
    cert_pem = f.read()
  with open(tls_key, 'rb') as f:
    signing_key = serialization.load_pem_private_key(f.read(), password=None)
  if not isinstance(signing_key, ec.EllipticCurvePrivateKey):
    raise ConfigError(f'hospital {hospital!r}: TLS key {tls_key} is not an EC key (ECDSA signs)')
  cert = x509.load_pem_x509_certificate(cert_pem)
  if cert.public_key().public_numbers() != signing_key.public_key().public_numbers():
    raise ConfigError(f'hospital {hospital!r}: TLS key {tls_key} is not the key of {tls_cert}')
  _check_names(cert, hospital, tls_cert)
  os.makedirs(out_dir, exist_ok=True)
  private_path = os.path.join(out_dir, hospital + PRIVATE_SUFFIX)
  public_path = os.path.join(out_dir, hospital + PUBLIC_SUFFIX)
  key = masks.generate_private_key()
  masks.write_private_key(key, private_path)
  raw = masks.raw_public_key(key)
  record = {
    'hospital': hospital,
    'protocol': masks.PROTOCOL,
    'public_key': base64.b64encode(raw).decode(),
    'certificate': cert_pem.decode(),
    'signature': base64.b64encode(
      signing_key.sign(_message(hospital, raw), ec.ECDSA(hashes.SHA256()))
    ).decode(),
  }
  with open(public_path, 'w') as f:
    json.dump(record, f, indent=1)
  return private_path, public_path


def _names(cert: x509.Certificate) -> set[str]:
  names = {a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)}
  try:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names |= set(san.get_values_for_type(x509.DNSName))
  except x509.ExtensionNotFound:
    pass
  return names


def _check_names(cert: x509.Certificate, hospital: str, where: str) -> None:
  if hospital not in _names(cert):
    raise ConfigError(
      f'hospital {hospital!r}: certificate in {where} names {sorted(_names(cert))}, not {hospital!r}'
    )


def _verified(path: str, hospital: str, ca: x509.Certificate, ca_path: str):
  """The X25519 public key in `path`, if every check passes (else ConfigError naming why)."""
  where = f'public mask key {path}'
  try:
    with open(path) as f:
      record = json.load(f)
    raw = base64.b64decode(record['public_key'], validate=True)
    signature = base64.b64decode(record['signature'], validate=True)
    cert = x509.load_pem_x509_certificate(record['certificate'].encode())
    key = x25519.X25519PublicKey.from_public_bytes(raw)
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ConfigError(f'hospital {hospital!r}: {where} is unreadable ({e})') from e
  if record.get('hospital') != hospital or record.get('protocol') != masks.PROTOCOL:
    raise ConfigError(
      f'hospital {hospital!r}: {where} is for {record.get("hospital")!r} '
      f'({record.get("protocol")!r}), not {hospital!r} ({masks.PROTOCOL!r})'
    )
  certificates.check_issued(
    cert, ca, who=f'hospital {hospital!r}', what=f'the certificate in {where}', ca_path=ca_path
  )
  _check_names(cert, hospital, where)
  try:
    cert.public_key().verify(signature, _message(hospital, raw), ec.ECDSA(hashes.SHA256()))
  except (InvalidSignature, TypeError, AttributeError) as e:
    raise ConfigError(
      f'hospital {hospital!r}: the signature of {where} does not hold (the key is not the one '
      'the hospital signed)'
    ) from e
  return key


def load_public_keys(directory: str, ca_path: str, hospitals=None) -> dict:
  """{hospital: X25519 public key} for `hospitals` (None: every file), each checked (`_verified`).

  Raises:
    ConfigError: The directory or the CA is missing, a hospital has no key
      file, or a file fails a check, naming the hospital.
  """
  if not os.path.isdir(directory):
    raise ConfigError(f'public mask key directory {directory} does not exist')
  with open(ca_path, 'rb') as f:
    ca = x509.load_pem_x509_certificate(f.read())
  if hospitals is None:
    hospitals = [
      n[: -len(PUBLIC_SUFFIX)] for n in os.listdir(directory) if n.endswith(PUBLIC_SUFFIX)
    ]
  keys = {}
  for hospital in sorted(hospitals):
    path = os.path.join(directory, hospital + PUBLIC_SUFFIX)
    if not os.path.isfile(path):
      raise ConfigError(
        f'hospital {hospital!r} has no public mask key in {directory} (expected '
        f'{hospital}{PUBLIC_SUFFIX}, made at the hospital by experiments.make_mask_key)'
      )
    keys[hospital] = _verified(path, hospital, ca, ca_path)
  return keys


def load_private_key(path: str, hospital: str, public_keys: dict) -> x25519.X25519PrivateKey:
  """`hospital`'s private key from `path`, checked to be the one its public file holds.

  Raises:
    ConfigError: A missing or unreadable file, not an X25519 key, or not the
      published key's pair.
  """
  try:
    with open(path, 'rb') as f:
      key = serialization.load_pem_private_key(f.read(), password=None)
  except (OSError, ValueError) as e:
    raise ConfigError(f'hospital {hospital!r}: mask key {path} is unreadable ({e})') from e
  if not isinstance(key, x25519.X25519PrivateKey):
    raise ConfigError(f'hospital {hospital!r}: mask key {path} is not an X25519 key')
  if masks.raw_public_key(key) != masks.raw_public_key(public_keys[hospital]):
    raise ConfigError(
      f'hospital {hospital!r}: mask key {path} is not the pair of its published public key'
    )
  return key
