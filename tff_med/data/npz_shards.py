"""Image shards: `<root>/<hospital>/{train,test}.npz` with `x` and `y` arrays.

MedMNIST's single-file layout is accepted too: `<root>/<hospital>/data.npz`
with `train_images`, `train_labels`, `test_images`, `test_labels`.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from tff_med.data import targets
from tff_med.data.layout import discover_hospitals, shard_file, warn_if_one_hospital
from tff_med.data.shards import FederatedShards, HospitalShard
from tff_med.errors import ShardError

_MEDMNIST_KEYS = {'train': ('train_images', 'train_labels'), 'test': ('test_images', 'test_labels')}


def load_npz_shards(root: str, *, num_classes: int) -> FederatedShards:
  """Reads and validates every hospital's `.npz` shards under `root`.

  Images are scaled to [0, 1] when stored as uint8 and given a channel axis
  when stored as (n, height, width). Labels of shape (n, 1) are flattened.

  Raises:
    ShardError: A file is missing or unreadable, a key is missing, x and y
      disagree in length, image shapes differ between hospitals, pixel values
      are not finite, or a label is outside 0..num_classes-1.
  """
  hospitals = discover_hospitals(root)
  warn_if_one_hospital(hospitals, root)
  shards = [_load_hospital(root, h, num_classes) for h in hospitals]
  shape = shards[0].x_train.shape[1:]
  for shard in shards:
    for x in (shard.x_train, shard.x_test):
      if len(x) and x.shape[1:] != shape:
        raise ShardError(
          f"image shape {x.shape[1:]} differs from {shards[0].hospital}'s {shape}",
          hospital=shard.hospital,
          file=shard.files[0],
        )
  names = [f'pixel_{i}' for i in range(int(np.prod(shape)))]
  return FederatedShards(shards, names, label='y', num_classes=num_classes)


def read_split(root: str, hospital: str, split: str):
  """(images as float32 (n, h, w, c), labels as float64 (n, 1), key of y, file) of one split.

  What a hospital's worker serves (`deployment.npz_view`) before any study names
  its classes; `load_npz_shards` checks the labels against them.
  """
  single = shard_file(root, hospital, 'data.npz')
  if os.path.isfile(single):
    path, (x_key, y_key) = single, _MEDMNIST_KEYS[split]
  else:
    path, x_key, y_key = shard_file(root, hospital, f'{split}.npz'), 'x', 'y'
  x, y = _read_pair(path, x_key, y_key, hospital)
  y = y.reshape(len(y), -1)
  if y.shape[1] != 1:
    raise ShardError(
      f'labels must be one per image, got shape {y.shape}', hospital=hospital, file=path
    )
  return _as_images(x, path, hospital), y.astype(np.float64), y_key, path


def _load_hospital(root: str, hospital: str, num_classes: int) -> HospitalShard:
  arrays, files = {}, []
  for split in ('train', 'test'):
    x, y, y_key, path = read_split(root, hospital, split)
    labels = targets.ClassLabel(y_key, num_classes).check(y, path, hospital, split)
    arrays[split] = (x, labels)
    files.append(path)
  if not len(arrays['train'][1]):
    raise ShardError('training shard has no rows', hospital=hospital, file=files[0])
  (x_train, y_train), (x_test, y_test) = arrays['train'], arrays['test']
  return HospitalShard(hospital, x_train, y_train, x_test, y_test, sorted(set(files)))


def _read_pair(path, x_key, y_key, hospital):
  if not os.path.isfile(path):
    raise ShardError('file does not exist', hospital=hospital, file=path)
  try:
    with np.load(path) as data:
      missing = [k for k in (x_key, y_key) if k not in data]
      if missing:
        raise ShardError(
          f'arrays {missing} not found; it has {sorted(data.files)}', hospital=hospital, file=path
        )
      x, y = data[x_key], data[y_key]
  except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
    if isinstance(e, ShardError):
      raise
    raise ShardError(
      f'cannot be read as .npz (truncated?): {e}', hospital=hospital, file=path
    ) from e
  if len(x) != len(y):
    raise ShardError(
      f'{x_key} has {len(x)} rows but {y_key} has {len(y)}', hospital=hospital, file=path
    )
  return x, y


def _as_images(x, path, hospital):
  x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
  if x.ndim == 3:
    x = x[..., np.newaxis]
  if not np.isfinite(x).all():
    raise ShardError('images hold non-finite values', hospital=hospital, file=path)
  return x
