"""What a shard's missing cells become: an error, dropped rows, or the hospital's training means.

Plain NumPy. A hospital's worker applies the same policy inside TFF
(`deployment.shard_format`), so a remote run sees the rows a simulation sees.
"""

from __future__ import annotations

import numpy as np

from tff_med.errors import ShardError

POLICIES = ('error', 'drop_rows', 'impute_mean')
SPLITS = ('train', 'test')


def apply_policy(x, y, table, names, target_columns, hospital, missing):
  """(x, y, note) of one split under the policy; 'impute_mean' fills in later (train means).

  Raises:
    ShardError: A missing value under 'error', or a missing target, naming its row and column.
  """
  feature_gaps = np.isnan(x)
  label_gaps = np.isnan(y).any(axis=1)
  if not feature_gaps.any() and not label_gaps.any():
    return x, y, None
  if missing == 'drop_rows':
    keep = ~(feature_gaps.any(axis=1) | label_gaps)
    note = f'drop_rows: dropped {int((~keep).sum())} of {len(y)} rows of {table.path} with missing values'
    return x[keep], y[keep], note
  if missing == 'error' or label_gaps.any():
    if label_gaps.any():
      row = int(np.argmax(label_gaps))
      column = target_columns[int(np.argmax(np.isnan(y[row])))]
    else:
      row, col = np.argwhere(feature_gaps)[0]
      column = names[col]
    hint = (
      "set data.missing='drop_rows' or 'impute_mean'"
      if missing == 'error'
      else 'a missing target cannot be imputed'
    )
    raise ShardError(
      f'value is missing ({hint})',
      hospital=hospital,
      file=table.path,
      column=column,
      row=int(row) + 1,
    )
  return x, y, None  # impute_mean fills in later, with the train means.


def impute_with_train_mean(arrays):
  """Fills every split's gaps with the training split's column means (0 for an empty column)."""
  x_train = arrays['train'][0]
  means = np.nanmean(np.where(np.isnan(x_train).all(axis=0), 0.0, x_train), axis=0)
  touched = 0
  for split in SPLITS:
    x, y = arrays[split]
    gaps = np.isnan(x)
    touched += int(gaps.any(axis=1).sum())
    arrays[split] = (np.where(gaps, means, x), y)
  note = f'impute_mean: filled missing values in {touched} rows' if touched else None
  return arrays, note
