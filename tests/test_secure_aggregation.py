"""Secure aggregation in simulation: what quantization and clipping cost, and nothing left behind."""

import csv
import glob
import json
import os
import tempfile

import numpy as np
import pytest

from configs import heart_disease
from tff_med import experiment
from tff_med.data import heart_disease as heart_data
from tff_med.learning.secure import simulation
from tff_med.run import export

HOSPITALS = ['cleveland', 'hungary', 'switzerland', 'va_long_beach']


@pytest.fixture(scope='module')
def heart_root(tmp_path_factory):
  return heart_data.write_shards(str(tmp_path_factory.mktemp('heart') / 'heart'))


def run(root, workdir, aggregator, **changes):
  config = heart_disease.get_config()
  config.data.root = root
  config.algorithm.aggregator = aggregator
  for path, value in changes.items():
    block, name = path.split('.')
    config[block][name] = value
  return experiment.train(config, str(workdir), print_fn=lambda _: None)


def max_difference(workdir_a, workdir_b) -> float:
  a, _ = export.load_exported(str(workdir_a))
  b, _ = export.load_exported(str(workdir_b))
  return max(
    float(np.max(np.abs(x - y))) for x, y in zip(a.get_weights(), b.get_weights(), strict=True)
  )


def metrics(workdir) -> list[dict]:
  with open(f'{workdir}/metrics.csv') as f:
    return list(csv.DictReader(f))


def step(config=None) -> float:
  s = (config or heart_disease.get_config()).secure
  return 2 * s.clip / (2**s.quantization_bits - 1)


@pytest.mark.parametrize('algorithm', ['fedavg', 'fedprox'])
def test_one_secure_round_is_within_half_a_step_of_the_plain_mean(heart_root, tmp_path, algorithm):
  settings = {'training.rounds': 1, 'algorithm.name': algorithm, 'algorithm.proximal_strength': 0.1}
  run(heart_root, tmp_path / 'plain', 'mean', **settings)
  run(heart_root, tmp_path / 'secure', 'secure', **settings)
  # One FedAvg round from the same model (server rate 1): the weights differ by the aggregates.
  assert max_difference(tmp_path / 'plain', tmp_path / 'secure') <= step() / 2 + 1e-7
  rows = metrics(tmp_path / 'secure')
  assert rows[-1]['train/secure_clipped_coordinates'] == '0'
  assert float(rows[-1]['comm/upload_bytes']) == 4 * (14 * 8 + 8)
  leftovers = glob.glob(os.path.join(tempfile.gettempdir(), simulation.DIRECTORY_PREFIX + '*'))
  assert not [d for d in leftovers if f'_{os.getpid()}_' in d]  # Keys and masks removed.


def test_a_round_without_a_hospital_is_masked_among_those_present(heart_root, tmp_path):
  dropout = {'training.rounds': 3, 'deployment.min_hospitals': 2}
  dropout['deployment.simulate_dropout'] = 'hungary@2'
  run(heart_root, tmp_path / 'plain', 'mean', **dropout)
  run(heart_root, tmp_path / 'secure', 'secure', **dropout)
  rows = metrics(tmp_path / 'secure')[1:]
  assert [r['deployment/hospitals_in_round'] for r in rows] == ['4', '3', '4']
  assert max_difference(tmp_path / 'plain', tmp_path / 'secure') <= 3 * step() / 2


def test_clipping_is_counted_and_warned_about(heart_root, tmp_path, caplog):
  run(heart_root, tmp_path, 'secure', **{'training.rounds': 1, 'secure.clip': 0.05})
  assert int(metrics(tmp_path)[-1]['train/secure_clipped_coordinates']) > 0
  assert 'secure aggregation clipped' in caplog.text


@pytest.mark.slow
def test_the_secure_heart_study_matches_plain_fedavg(heart_root, tmp_path):
  plain = run(heart_root, tmp_path / 'plain', 'mean')
  secure = run(heart_root, tmp_path / 'secure', 'secure')

  def mean_accuracy(result):
    return np.mean([result.loop.final_eval[h]['accuracy'] for h in HOSPITALS])

  assert abs(mean_accuracy(secure) - mean_accuracy(plain)) <= 0.005
  # Each round's aggregate is within step / 2 of the plain one; over 15 rounds the weights
  # drift by at most that much per round (measured: 4.1e-5, step / 2 = 3.1e-5).
  assert max_difference(tmp_path / 'plain', tmp_path / 'secure') <= 15 * step() / 2


def test_patient_level_dp_runs_under_secure_aggregation(heart_root, tmp_path):
  private = {'training.rounds': 2, 'privacy.level': 'patient', 'privacy.noise_multiplier': 1.0}
  run(heart_root, tmp_path / 'plain', 'mean', **private)
  run(heart_root, tmp_path / 'secure', 'secure', **private)
  assert metrics(tmp_path / 'secure')[-1]['train/secure_clipped_coordinates'] == '0'
  assert max_difference(tmp_path / 'plain', tmp_path / 'secure') <= 2 * step() / 2
  plain, secure = (
    json.loads((tmp_path / r / 'results.json').read_text()) for r in ('plain', 'secure')
  )
  assert secure['privacy'] == plain['privacy']  # Masks add no noise: the same epsilon.
