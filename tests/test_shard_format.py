"""The hospital-side CSV loaders, run in this process: the rows a simulation would see."""

import csv
import os

import numpy as np
import pytest

from tff_med import runtime
from tff_med.clients import client_data
from tff_med.data import shards
from tff_med.deployment import remote_data
from tff_med.deployment.shard_format import ShardFormat

FEATURES = ('age', 'bmi')


def _write(root, hospital, rows):
  os.makedirs(root / hospital, exist_ok=True)
  for split in ('train', 'test'):
    with open(root / hospital / f'{split}.csv', 'w', newline='') as f:
      csv.writer(f).writerows([['age', 'bmi', 'outcome'], *rows])


@pytest.mark.parametrize('missing', ['drop_rows', 'impute_mean'])
@pytest.mark.own_worker  # Started in the data root, as a hospital's worker is.
def test_the_loaders_apply_the_missing_value_policy_as_the_simulation_does(
  tmp_path, monkeypatch, missing
):
  _write(
    tmp_path,
    'alpha',
    [['61', '27.5', '1'], ['NA', '31', '0'], ['50', '?', 'true'], ['44', '22', 'no']],
  )
  expected = shards.load_csv_shards(str(tmp_path), label='outcome', num_classes=2, missing=missing)
  monkeypatch.chdir(tmp_path)  # The worker's working directory is its data root.
  reader = ShardFormat(FEATURES, 'outcome', 2, missing)
  spec = remote_data.client_input('alpha', 'test', mean=[0, 0], std=[1, 1])
  with runtime.local_runtime():
    header, kept, histogram, bad_row, _, gaps = reader.describe_computation()(spec)
    batches = list(reader.test_computation(10)(spec))
  x = np.concatenate([b[0] for b in batches])
  np.testing.assert_allclose(x, expected['alpha'].x_test, rtol=1e-6)
  assert (kept, gaps, bad_row) == (len(expected['alpha'].y_test), 2, 0)
  assert histogram.tolist() == [-1, -1]  # Fewer than 5 of each class: suppressed.


@pytest.mark.own_worker  # Started in the data root, as a hospital's worker is.
def test_the_attackers_loader_flips_its_training_labels(tmp_path, monkeypatch):
  _write(tmp_path, 'alpha', [['61', '27.5', '1'], ['55', '31', '0'], ['50', '30', '1']])
  monkeypatch.chdir(tmp_path)
  loader = ShardFormat(FEATURES, 'outcome', 2).train_computation(
    client_data.LocalTraining(3, 1, 0), flip=True
  )
  spec = remote_data.client_input('alpha', 'train', seed=1, rows=3, mean=[0, 0], std=[1, 1])
  with runtime.local_runtime():
    honest, flipped = (np.concatenate([b[1] for b in loader((flag, spec))]) for flag in (0, 1))
  np.testing.assert_array_equal(flipped, 1 - honest)
  assert sorted(honest.ravel().tolist()) == [0, 1, 1]
