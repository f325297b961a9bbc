"""Tiny, readable shard directories for tests."""

import os

HEADER = 'age,bmi,smoker,outcome'
# Two hospitals, a handful of patients each; `outcome` is the label.
TABLES = {
  'alpha': {
    'train': ['61,27.5,1,1', '45,22.1,0,0', '70,31.0,1,1', '38,24.3,0,0'],
    'test': ['55,26.0,1,1', '41,21.9,0,0'],
  },
  'beta': {
    'train': ['66,29.9,1,1', '50,23.4,0,0', '59,28.8,0,1'],
    'test': ['48,25.1,0,0', '72,30.2,1,1'],
  },
}


def write_shards(root, tables=None, header=HEADER) -> str:
  """Writes `tables` ({hospital: {split: [rows]}}) as CSV shards under `root`."""
  for hospital, splits in (tables or TABLES).items():
    os.makedirs(os.path.join(root, hospital), exist_ok=True)
    for split, rows in splits.items():
      with open(os.path.join(root, hospital, f'{split}.csv'), 'w') as f:
        f.write('\n'.join([header] + rows) + '\n')
  return str(root)


def with_rows(hospital, split, rows):
  """TABLES with one hospital's split replaced."""
  tables = {h: dict(s) for h, s in TABLES.items()}
  tables[hospital][split] = rows
  return tables


def write_digit_shards(root, hospitals=('alpha', 'beta', 'gamma', 'delta')) -> str:
  """scikit-learn's 8x8 digit images (shipped with it) as `.npz` shards, 10 classes.

  The images are dealt round-robin to the hospitals; each keeps a quarter of its
  share for testing. Pixels are uint8 (0..16), as an image export would store them.
  """
  import numpy as np
  from sklearn.datasets import load_digits

  digits = load_digits()
  x, y = digits.images.astype(np.uint8), digits.target.astype(np.int64)
  for i, hospital in enumerate(hospitals):
    xs, ys = x[i :: len(hospitals)], y[i :: len(hospitals)]
    cut = len(xs) * 3 // 4
    os.makedirs(os.path.join(root, hospital), exist_ok=True)
    np.savez(os.path.join(root, hospital, 'train.npz'), x=xs[:cut], y=ys[:cut])
    np.savez(os.path.join(root, hospital, 'test.npz'), x=xs[cut:], y=ys[cut:])
  return str(root)
