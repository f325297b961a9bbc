"""Where shards live: `<root>/<hospital_id>/<split>.<csv|npz>`, each hospital one TFF client.

Every path is checked to stay inside the root (a link out of it is refused).
"""

from __future__ import annotations

import os

from absl import logging

from tff_med.errors import ShardError


def discover_hospitals(root: str) -> list[str]:
  """Returns the sorted hospital ids (sub-directories) under `root`.

  Raises:
    ShardError: `root` is missing, holds no hospital directory, or a hospital
      directory is a link to a place outside `root`.
  """
  if not root or not os.path.isdir(root):
    raise ShardError(f'shard root {root!r} does not exist or is not a directory')
  hospitals = sorted(
    d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith('.')
  )
  if not hospitals:
    raise ShardError(
      f'shard root {root!r} is empty: expected one directory per hospital, '
      'each with train.csv and test.csv'
    )
  for hospital in hospitals:
    check_inside_root(root, os.path.join(root, hospital), hospital)
  return hospitals


def warn_if_one_hospital(hospitals: list[str], root: str) -> None:
  """A study over a single hospital is local training: say so (a hospital's worker may serve one)."""
  if len(hospitals) == 1:
    logging.warning(
      'Only one hospital (%s) under %s: this run is local training, not a federation.',
      hospitals[0],
      root,
    )


def shard_file(root: str, hospital: str, name: str) -> str:
  """The path of a hospital's shard file, refused if it links outside `root`.

  The manifest records the paths read; a link leading elsewhere would make it
  name a file that was not the one read.

  Raises:
    ShardError: The file (or its directory) resolves to a place outside `root`.
  """
  path = os.path.join(root, hospital, name)
  check_inside_root(root, path, hospital)
  return path


def check_inside_root(root: str, path: str, hospital: str) -> None:
  """Raises ShardError when `path` resolves to a place outside `root` (a link out of it)."""
  real_root, real = os.path.realpath(root), os.path.realpath(path)
  if os.path.commonpath([real_root, real]) != real_root:
    raise ShardError(
      f'is a link to {real}, outside the shard root {real_root}; copy the data into the root',
      hospital=hospital,
      file=path,
    )
