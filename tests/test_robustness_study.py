"""The robustness study end to end at a tiny size."""

import csv
import json
import os

import pytest

from configs import heart_disease_robustness
from tff_med.errors import ConfigError
from tff_med.study import robustness

pytestmark = pytest.mark.slow  # whole studies


def test_smoke_study_writes_table_plot_and_one_row_per_run(tmp_path):
  config = heart_disease_robustness.get_config('smoke')
  config.data.root = str(tmp_path / 'heart')
  config.training.rounds = 1
  config.training.eval_every = 1
  rows = robustness.run_robustness(config, str(tmp_path / 'out'), print_fn=lambda _: None)
  assert len(rows) == 4  # (clean, sign_flip) x (mean, median) x 1 seed
  assert {r['adversary'] for r in rows if r['attack'] == 'sign_flip'} == {'cleveland'}
  with open(tmp_path / 'out' / 'robustness.csv') as f:
    assert len(list(csv.DictReader(f))) == 4
  table = (tmp_path / 'out' / 'robustness.md').read_text()
  assert '| heart_4_hospitals | median |' in table
  assert os.path.getsize(tmp_path / 'out' / 'robustness.png') > 0
  manifest = json.load(open(tmp_path / 'out' / 'manifest.json'))  # As every study writes.
  assert len(manifest['shards']) == 8 and manifest['seeds'] == [0]
  # The studies' runtime.engine='auto' runs these fused, and prints TFF's engine's table.
  assert set(manifest['engines'].values()) == {'fused'}
  config.runtime.engine = 'tff'
  on_tff = robustness.run_robustness(config, str(tmp_path / 'tff'), print_fn=lambda _: None)
  assert [r['accuracy'] for r in on_tff] == pytest.approx([r['accuracy'] for r in rows], abs=5e-4)
  tff_table = (tmp_path / 'tff' / 'robustness.md').read_text()
  assert [r for r in tff_table.splitlines() if r.startswith('|')] == [
    r for r in table.splitlines() if r.startswith('|')
  ]


def test_synthetic_split_deals_every_patient_to_some_hospital(tmp_path):
  root = robustness.synthetic_heart_shards(str(tmp_path / 'syn'), 10, seed=0)
  hospitals = sorted(os.listdir(root))
  assert len(hospitals) == 10
  rows = sum(
    sum(1 for _ in open(os.path.join(root, h, s))) - 1
    for h in hospitals
    for s in ('train.csv', 'test.csv')
  )
  assert rows == 740


def test_seeds_below_one_is_an_error(tmp_path):
  config = heart_disease_robustness.get_config('smoke')
  config.robustness.seeds = 0
  with pytest.raises(ConfigError, match='seeds must be >= 1'):
    robustness.run_robustness(config, str(tmp_path))
