"""Simulated hospitals' side of secure aggregation: keys and masks in private directories.

In a simulation every hospital lives in this process, but each keeps its own
X25519 key in a directory of its own (mode 0700, made fresh for the run and
removed after it) and writes its masks there, with the same code a hospital's
gate runs (`masks.MaskWriter`), so a simulated secure run computes exactly
what a deployment would.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile

from cryptography.hazmat.primitives import serialization

from tff_med import stale_files
from tff_med.learning.secure import masks

DIRECTORY_PREFIX = 'tff_med_secure_'


def _writer(hospital: str, directory: str, public_keys: dict):
  path = os.path.join(directory, 'mask.key')
  with open(path, 'rb') as f:
    private_key = serialization.load_pem_private_key(f.read(), password=None)
  return masks.MaskWriter(hospital, private_key, public_keys, directory)


@contextlib.contextmanager
def simulated_hospitals(hospitals: list[str], size: int):
  """Yields (round, hospitals) -> each hospital's mask token (its mask written first)."""
  stale_files.sweep(DIRECTORY_PREFIX)
  root = tempfile.mkdtemp(prefix=stale_files.owned_name(DIRECTORY_PREFIX))
  try:
    public_keys = {}
    for hospital in hospitals:
      directory = os.path.join(root, hospital)
      os.mkdir(directory, 0o700)
      key = masks.generate_private_key()
      masks.write_private_key(key, os.path.join(directory, 'mask.key'))
      public_keys[hospital] = key.public_key()
    writers = {h: _writer(h, os.path.join(root, h), public_keys) for h in hospitals}
    session = secrets.token_hex(8)

    def tokens(round_num: int, round_hospitals: list[str]) -> list[str]:
      return [
        writers[h].write(masks.request(h, session, round_num, size, round_hospitals))
        for h in round_hospitals
      ]

    yield tokens
  finally:
    shutil.rmtree(root, ignore_errors=True)
