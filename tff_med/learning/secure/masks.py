"""Pairwise masks: what a hospital adds to its quantized update so only the sum is revealed.

For a round with hospitals P (sorted), hospital i adds, modulo M = 2^k,

  m_i = sum over j in P, j != i of  (+1 if i < j else -1) * PRG(s_ij)

(M = 2^32 here; the aggregator reduces modulo its own 2^k, which 2^32 is a
multiple of, so a mask stays uniform and the masks still cancel), where
s_ij = HKDF-SHA256(X25519(i's private key, j's public key), info = the
protocol, the session (one per coordinator run), the round, P and the pair)
and PRG is ChaCha20's keystream (`cryptography`), read as little-endian uint32.
i and j derive the same s_ij, with opposite signs, so the masks of P sum to 0
modulo M. Binding P and the round means a redone round (a hospital dropped) or
a resumed run (a new session) never reuses a mask.

A mask is requested by a token the coordinator sends as client input,
'masks/<hospital>/<session>/<round>/<size>/<peer>+<peer>+...', which is also
where the hospital writes the mask (int64 values in [0, M)) for its TFF worker
to read, relative to the worker's private directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tempfile

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PROTOCOL = 'tff_med secure sum v1'
MASK_BITS = 32  # One ChaCha20 word per value.
DIRECTORY = 'masks'
_NAME = r'[A-Za-z0-9_.-]+'
_TOKEN = re.compile(
  rf'{DIRECTORY}/(?P<hospital>{_NAME})/(?P<session>[0-9a-f]{{16}})/(?P<round>[0-9]{{1,9}})'
  rf'/(?P<size>[0-9]{{1,9}})/(?P<peers>{_NAME}(?:\+{_NAME})*)'
)
MAX_PEERS_CHARS = 255  # The peers are one file name.


class MaskError(Exception):
  """A mask request a hospital refuses; the message names the hospital and why."""


@dataclasses.dataclass(frozen=True)
class MaskRequest:
  """One hospital's mask for one round of one session."""

  hospital: str
  session: str
  round_num: int
  size: int
  peers: tuple[str, ...]

  def token(self) -> str:
    """The client input that asks for this mask (and the file's relative path)."""
    return '/'.join(
      [
        DIRECTORY,
        self.hospital,
        self.session,
        str(self.round_num),
        str(self.size),
        '+'.join(self.peers),
      ]
    )


def parse_token(text: str) -> MaskRequest | None:
  """The request a well-formed token makes, or None for any other string."""
  match = _TOKEN.fullmatch(text)
  if match is None:
    return None
  peers = tuple(match['peers'].split('+'))
  if any(name in ('.', '..') for name in (match['hospital'], *peers)):
    return None
  return MaskRequest(
    match['hospital'], match['session'], int(match['round']), int(match['size']), peers
  )


def request(hospital: str, session: str, round_num: int, size: int, peers) -> MaskRequest:
  """The mask request of `hospital` in a round of `peers` (sorted here)."""
  return MaskRequest(hospital, session, round_num, size, tuple(sorted(peers)))


def _pair_stream(shared: bytes, req: MaskRequest, a: str, b: str) -> np.ndarray:
  info = '|'.join([PROTOCOL, req.session, str(req.round_num), '+'.join(req.peers), a, b])
  seed = HKDF(hashes.SHA256(), 32, salt=None, info=info.encode()).derive(shared)
  # ChaCha20 with a 16-byte nonce of zeros: each seed is used for one stream only.
  stream = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor()
  return np.frombuffer(stream.update(bytes(4 * req.size)), '<u4').astype(np.uint64)


def mask(private_key: x25519.X25519PrivateKey, public_keys: dict, req: MaskRequest) -> np.ndarray:
  """Hospital `req.hospital`'s mask, int64 values in [0, 2^32).

  Raises:
    MaskError: The hospital is not among the peers, fewer than two hospitals,
      a peer without a public key, or peers not sorted and distinct.
  """
  me = req.hospital
  if list(req.peers) != sorted(set(req.peers)):
    raise MaskError(f"hospital {me!r}: the round's hospitals must be sorted and distinct")
  if me not in req.peers:
    raise MaskError(f'hospital {me!r} is asked for a mask of a round it is not in')
  if len(req.peers) < 2:
    raise MaskError(
      f'hospital {me!r} refuses a secure round of one hospital: its masked update would be '
      'its update'
    )
  missing = [p for p in req.peers if p != me and p not in public_keys]
  if missing:
    raise MaskError(f'hospital {me!r} has no public key of {", ".join(missing)}')
  modulus = np.uint64(2**MASK_BITS)
  total = np.zeros(req.size, np.uint64)
  for peer in req.peers:
    if peer == me:
      continue
    a, b = sorted((me, peer))
    stream = _pair_stream(private_key.exchange(public_keys[peer]), req, a, b)
    total = (total + (stream if me == a else (modulus - stream) % modulus)) % modulus
  return total.astype(np.int64)


class MaskWriter:
  """One hospital's side: writes the masks its TFF worker reads, under `root`.

  Args:
    hospital: The hospital whose private key this is.
    private_key: Its X25519 private key (never leaves this object's process).
    public_keys: {hospital: X25519 public key} of the consortium (authenticated
      by the caller).
    root: The worker's private directory; masks go under `root/masks/`.
  """

  def __init__(self, hospital, private_key, public_keys: dict, root: str):
    self.hospital = hospital
    self._private_key = private_key
    self._public_keys = dict(public_keys)
    self.root = root
    self._written: list[tuple[str, int, str]] = []  # (session, round, path) still on disk.

  def write(self, req: MaskRequest) -> str:
    """Writes the mask `req` asks for (once; a repeat finds it) and returns its path.

    Raises:
      MaskError: `req` is another hospital's, or `mask` refuses it.
    """
    if req.hospital != self.hospital:
      raise MaskError(f'hospital {self.hospital!r} cannot make the mask of {req.hospital!r}')
    path = os.path.join(self.root, req.token())
    if os.path.exists(path):
      return path
    values = mask(self._private_key, self._public_keys, req)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
    with os.fdopen(fd, 'wb') as f:
      f.write(values.astype('<i8').tobytes())
    os.replace(tmp, path)  # Whole or absent: the worker never reads half a mask.
    self._forget_before(req)
    self._written.append((req.session, req.round_num, path))
    return path

  def _forget_before(self, req: MaskRequest) -> None:
    # A round's masks are done with once a later round (or another run) asks for its own:
    # removed, so a long run keeps one round's masks on disk, not all of them.
    kept = []
    for session, round_num, path in self._written:
      if session == req.session and round_num >= req.round_num:
        kept.append((session, round_num, path))
      else:
        with contextlib.suppress(FileNotFoundError):
          os.remove(path)
    self._written = kept


def generate_private_key() -> x25519.X25519PrivateKey:
  """A fresh X25519 private key."""
  return x25519.X25519PrivateKey.generate()


def write_private_key(key: x25519.X25519PrivateKey, path: str) -> None:
  """Writes `key` as PKCS#8 PEM, readable by its owner only."""
  fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
  with os.fdopen(fd, 'wb') as f:
    f.write(
      key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
      )
    )


def raw_public_key(key) -> bytes:
  """The 32 raw bytes of an X25519 public key (or of a private key's public key)."""
  if isinstance(key, x25519.X25519PrivateKey):
    key = key.public_key()
  return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
