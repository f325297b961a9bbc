"""The privacy-utility sweep end to end at a tiny size."""

import csv
import json
import math
import os

import pytest

from configs import heart_disease_privacy
from tff_med.errors import ConfigError
from tff_med.study import privacy_sweep

pytestmark = pytest.mark.slow  # whole studies


def test_smoke_sweep_writes_table_plot_and_one_row_per_run(tmp_path):
  config = heart_disease_privacy.get_config('smoke')
  config.data.root = str(tmp_path / 'heart')
  config.training.rounds = 1
  config.training.eval_every = 1
  rows = privacy_sweep.run_privacy_sweep(config, str(tmp_path / 'out'), print_fn=lambda _: None)
  assert [r['target_epsilon'] for r in rows] == [math.inf, 1.0]
  assert rows[0]['max_epsilon_pld'] == math.inf  # Non-private spends everything.
  assert 0.8 < rows[1]['max_epsilon_pld'] <= 1.0  # Calibrated by RDP, PLD is tighter.
  with open(tmp_path / 'out' / 'privacy.csv') as f:
    assert len(list(csv.DictReader(f))) == 2
  table = (tmp_path / 'out' / 'privacy.md').read_text()
  assert '| inf | - |' in table and '| 1 | 0.001 |' in table
  assert os.path.getsize(tmp_path / 'out' / 'privacy_utility.png') > 0
  manifest = json.load(open(tmp_path / 'out' / 'manifest.json'))  # As every study writes.
  assert len(manifest['shards']) == 8 and manifest['seeds'] == [0]
  # The studies' runtime.engine='auto' runs DP-SGD fused, and ends as TFF's engine does.
  assert set(manifest['engines'].values()) == {'fused'}
  config.runtime.engine = 'tff'
  on_tff = privacy_sweep.run_privacy_sweep(config, str(tmp_path / 'tff'), print_fn=lambda _: None)
  for want, got in zip(on_tff, rows, strict=True):
    for key, value in want.items():
      if isinstance(value, float) and math.isfinite(value):
        assert got[key] == pytest.approx(value, abs=5e-4), key


@pytest.mark.parametrize(
  'field, value, message',
  [
    ('seeds', 0, 'seeds must be >= 1'),
    ('epsilons', (0.0, 1.0), 'epsilons must be > 0'),
    ('deltas', (), 'must not be empty'),
  ],
)
def test_bad_sweeps_are_refused_before_training(tmp_path, field, value, message):
  config = heart_disease_privacy.get_config('smoke')
  config.privacy_study[field] = value
  with pytest.raises(ConfigError, match=message):
    privacy_sweep.run_privacy_sweep(config, str(tmp_path), print_fn=lambda _: None)
  assert not os.listdir(tmp_path)
