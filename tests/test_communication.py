"""Communication: bytes per round from the real tensors, compression and secure aggregation."""

import csv

import numpy as np
import pytest

from configs import heart_disease
from tff_med import experiment
from tff_med.learning import communication, models


def test_large_tensors_are_quantized_small_ones_sent_as_is():
  big = np.random.RandomState(0).normal(size=(30000,)).astype(np.float32)
  small = np.ones((13, 1), np.float32)
  assert communication.quantized_bytes(small) == communication.tensor_bytes(small) == 52
  assert communication.quantized_bytes(big) < communication.tensor_bytes(big) / 3


def test_cost_counts_the_weights_broadcast_and_the_update_uploaded():
  model = models.logistic_regression((13,), 2)
  cost = communication.communication_cost(model, aggregator='compression')
  assert cost.broadcast == (13 + 1) * 4
  assert cost.upload == cost.upload_uncompressed == (13 + 1) * 4 + 4  # Too small to compress.
  totals = cost.round_metrics(4)
  assert totals[communication.BROADCAST_BYTES] == 4 * 56


@pytest.fixture(scope='module')
def heart_root(tmp_path_factory):
  return str(tmp_path_factory.mktemp('heart'))


def last_row(workdir):
  with open(f'{workdir}/metrics.csv') as f:
    return list(csv.DictReader(f))[-1]


def one_round(root, workdir, aggregator, **model):
  config = heart_disease.get_config('smoke')
  config.data.root = root
  config.training.rounds = 1
  config.algorithm.aggregator = aggregator
  config.model.update(model)
  return experiment.train(config, str(workdir), print_fn=lambda _: None)


@pytest.mark.slow
def test_compression_aggregator_cuts_the_bytes_uploaded(heart_root, tmp_path):
  result = one_round(heart_root, tmp_path, 'compression', name='mlp', hidden_units=(2048,))
  row = last_row(tmp_path)
  uploaded = float(row[communication.UPLOAD_BYTES])
  plain = float(row[communication.UPLOAD_BYTES_UNCOMPRESSED])
  assert uploaded < plain / 2  # The 13 x 2048 kernel goes as 8-bit values.
  model_bytes = sum(w.numpy().nbytes for w in result.task.keras_model().weights)
  assert float(row[communication.BROADCAST_BYTES]) == 4 * model_bytes
  assert np.isfinite(result.loop.final_eval['all']['loss'])


def test_secure_aggregation_counts_the_masked_upload():
  model = models.logistic_regression((13,), 2)
  cost = communication.communication_cost(model, aggregator='secure')
  assert cost.upload == 14 * 8 + 4 + 4  # int64 masked values, the float32 weight, a clip count.
  assert cost.upload_uncompressed == 14 * 4 + 4
