"""Turn one table with a site column into the per-hospital shard layout.

For a consortium's first try-out, when a coordinator has a de-identified pooled
extract, or to re-split per-site exports: `<root>/<site>/{train,test}.csv`,
split per site with a seeded shuffle (test size rounded up, as in the heart data).
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pandas as pd

from tff_med.errors import ShardError


def write_once(frame: pd.DataFrame, path: str) -> None:
  """Writes `frame` to the CSV `path` unless it exists, through a temporary name.

  An interrupted first run never leaves a half-written shard behind.
  """
  if not os.path.exists(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    frame.to_csv(path + '.tmp', index=False)
    os.replace(path + '.tmp', path)


def site_directory_name(site: object) -> str:
  """A safe directory name for a site label ('VA Long Beach' -> 'va_long_beach')."""
  name = re.sub(r'[^0-9a-z]+', '_', str(site).strip().lower()).strip('_')
  if not name:
    raise ShardError(f'site label {site!r} gives an empty directory name')
  return name


def write_site_shards(
  table: pd.DataFrame, site_column: str, root: str, *, test_fraction: float = 0.34, seed: int = 0
) -> dict[str, tuple[int, int]]:
  """Writes one shard directory per value of `site_column` (which is dropped).

  Returns:
    {site directory: (train rows, test rows)}.

  Raises:
    ShardError: The site column is missing or has missing values, or a site has
      too few rows to keep one for training.
  """
  if site_column not in table.columns:
    raise ShardError(f'site column {site_column!r} not found; columns are {list(table.columns)}')
  if table[site_column].isna().any():
    row = int(np.argmax(table[site_column].isna().to_numpy())) + 1
    raise ShardError('site is missing', column=site_column, row=row)
  sizes = {}
  for site, rows in table.groupby(site_column, sort=True):
    name = site_directory_name(site)
    order = np.random.RandomState(seed).permutation(len(rows))
    num_test = math.ceil(test_fraction * len(rows))
    if num_test >= len(rows):
      raise ShardError(f'site {site!r} has {len(rows)} rows: too few to split')
    rows = rows.drop(columns=[site_column])
    os.makedirs(os.path.join(root, name), exist_ok=True)
    rows.iloc[order[num_test:]].to_csv(os.path.join(root, name, 'train.csv'), index=False)
    rows.iloc[order[:num_test]].to_csv(os.path.join(root, name, 'test.csv'), index=False)
    sizes[name] = (len(rows) - num_test, num_test)
  return sizes
