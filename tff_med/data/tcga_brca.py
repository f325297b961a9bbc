"""The embedded survival default: FLamby's Fed-TCGA-BRCA, six regions of breast-cancer patients.

Clinical data of 1,088 TCGA-BRCA patients as preprocessed and split by FLamby
(du Terrail et al., NeurIPS 2022 Datasets and Benchmarks; owkin/FLamby, MIT
licence), following Andreux et al. 2020 on data from Liu et al., Cell 2018
(TCGA Pan-Cancer Clinical Data Resource). The files in `fed_tcga_brca/` beside
this module are FLamby's, unchanged; its README there gives provenance and
terms: open-access TCGA clinical data under the NCI Genomic Data Commons data
access policy, and users must not attempt to identify individual research
participants.

`write_shards` splits exactly by FLamby's `fold2` column (`train_k`/`test_k`
for region k): 39 numeric features, then `E` (1 = death observed) and `T`
(days to event or censoring). The TCGA barcode is not written.
"""

from __future__ import annotations

import os

import pandas as pd

from tff_med.data.split import write_once

DATA_DIR = os.path.join(os.path.dirname(__file__), 'fed_tcga_brca')
EVENT, TIME = 'E', 'T'


def load_table() -> pd.DataFrame:
  """FLamby's table joined with its split: 1,088 rows, 39 features, E, T, `region`, `split`."""
  table = pd.read_csv(os.path.join(DATA_DIR, 'brca.csv'))
  split = pd.read_csv(os.path.join(DATA_DIR, 'train_test_split.csv'))
  joined = table.merge(split[['pid', 'fold2']], on='pid', how='inner')
  parts = joined.pop('fold2').str.split('_', expand=True)
  joined['split'], joined['region'] = parts[0], 'region_' + parts[1]
  return joined.drop(columns=['pid'])


def write_shards(root: str) -> str:
  """Writes `<root>/region_<k>/{train,test}.csv` unless they already exist; returns `root`."""
  for (region, split), rows in load_table().groupby(['region', 'split']):
    write_once(rows.drop(columns=['region', 'split']), os.path.join(root, region, f'{split}.csv'))
  return root
