"""A hospital's `.npz` image shards as tensor files TFF's worker reads by name.

TF has no op that reads NumPy's zip format (np.savez_compressed is raw deflate),
so the hospital's own process reads its shards once at start, checks them
(`data.npz_shards.read_split`), and writes each split as two serialized tensors
(`<hospital>/<split>.npz.x`, `.npz.y`) in a private directory (mode 0700) that
becomes the worker's working directory: the worker sees those files only. The
client input still names `<hospital>/<split>.npz`; the loader
(`deployment.npz_format`) appends `.x` and `.y`. The directory is removed when
the worker stops, and swept at the next start if the process was killed.
"""

from __future__ import annotations

import os
import tempfile

from tff_med import stale_files
from tff_med.clients import resident
from tff_med.data import layout, npz_shards, shards
from tff_med.errors import ShardError

PREFIX = 'tff_med_npz_'


def is_npz_root(root: str) -> bool:
  """True when the root's hospitals hold `.npz` shards (train.npz or MedMNIST's data.npz)."""
  return any(
    os.path.isfile(os.path.join(root, h, name))
    for h in layout.discover_hospitals(root)
    for name in ('train.npz', 'data.npz')
  )


def check_shards(root: str) -> list[str]:
  """What a hospital checks at start, for either kind of shard; returns the hospitals."""
  return _check_npz(root) if is_npz_root(root) else shards.check_csv_shards(root)


def image_shape(root: str, hospital: str, split: str) -> tuple[int, ...]:
  """The (height, width, channels) of a hospital's images in `split`."""
  return tuple(npz_shards.read_split(root, hospital, split)[0].shape[1:])


def _check_npz(root: str) -> list[str]:
  """Reads and checks every hospital's shards (images, labels whole and >= 0); returns them."""
  hospitals = layout.discover_hospitals(root)
  for hospital in hospitals:
    for split in ('train', 'test'):
      _checked(root, hospital, split)
  return hospitals


def _checked(root, hospital, split):
  x, y, key, path = npz_shards.read_split(root, hospital, split)
  bad = (y[:, 0] != y[:, 0].round()) | (y[:, 0] < 0) | ~(abs(y[:, 0]) < 2**31)
  if bad.any():
    row = int(bad.argmax())
    raise ShardError(
      f'label {y[row, 0]:g} is not a class number',
      hospital=hospital,
      file=path,
      column=key,
      row=row + 1,
    )
  if split == 'train' and not len(y):
    raise ShardError('training shard has no rows', hospital=hospital, file=path)
  return x, y[:, 0].astype('int32')


def write_view(root: str, hospitals: list[str]) -> str:
  """Writes the worker's tensor files of `hospitals` into a new private directory; returns it."""
  stale_files.sweep(PREFIX)
  directory = tempfile.mkdtemp(prefix=stale_files.owned_name(PREFIX))
  for hospital in hospitals:
    os.mkdir(os.path.join(directory, hospital), 0o700)
    for split in ('train', 'test'):
      x, y = _checked(root, hospital, split)
      base = os.path.join(directory, hospital, f'{split}.npz')
      resident.write_tensor(base + '.x', x)
      resident.write_tensor(base + '.y', y)
  return directory
