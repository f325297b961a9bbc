"""Standardization: the federated TFF computation equals pooled statistics."""

import numpy as np
import pytest

from tests.shard_fixtures import write_shards
from tff_med import runtime
from tff_med.clients.federated_stats import federated_moments
from tff_med.data import scaling
from tff_med.data.shards import FederatedShards, HospitalShard, load_csv_shards


@pytest.fixture
def data(tmp_path):
  return load_csv_shards(write_shards(tmp_path), label='outcome')


def test_federated_moments_sum_per_hospital_sums():
  a = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
  b = np.array([[5.0, 6.0]], np.float32)
  with runtime.local_runtime():
    total, total_sq, count = federated_moments([a, b])
  np.testing.assert_allclose(total, [9, 12])
  np.testing.assert_allclose(total_sq, [35, 56])
  assert count == 3


def test_federated_scaling_equals_pooled_mean_and_std(data):
  with runtime.local_runtime():
    standardizer = scaling.fit_standardizer(data, 'federated', federated_moments)
  pooled = np.concatenate([s.x_train for s in data.shards])
  np.testing.assert_allclose(standardizer.mean['alpha'], pooled.mean(0), rtol=1e-6)
  np.testing.assert_allclose(standardizer.std['beta'], pooled.std(0), rtol=1e-5)


def test_per_hospital_scaling_uses_each_hospitals_training_data(data):
  standardizer = scaling.fit_standardizer(data, 'per_hospital')
  scaled = scaling.standardize(data, standardizer)
  for shard in scaled.shards:
    np.testing.assert_allclose(shard.x_train.mean(0), 0, atol=1e-5)


def test_constant_feature_gets_unit_scale():
  mean, std = scaling.moments_from_sums(np.array([6.0]), np.array([12.0]), 3)
  assert mean[0] == 2.0 and std[0] == 1.0


def test_unknown_scaling_mode_lists_valid_modes(data):
  with pytest.raises(ValueError, match='federated, none, per_hospital'):
    scaling.fit_standardizer(data, 'minmax')


@pytest.mark.parametrize('mode', ['none', 'per_hospital'])
def test_image_shards_keep_their_shape(mode):
  # 'none' once built its statistics per feature name and broadcast them
  # against (rows, 4, 4, 1) images into (rows, 4, 4, 16).
  x = np.arange(2 * 16, dtype=np.float32).reshape(2, 4, 4, 1)
  y = np.array([0, 1], np.int32)
  shard = HospitalShard('alpha', x, y, x[:1], y[:1], files=['alpha.npz'])
  data = FederatedShards([shard], [f'pixel_{i}' for i in range(16)], 'label', 2)
  scaled = scaling.standardize(data, scaling.fit_standardizer(data, mode))
  assert scaled.shards[0].x_train.shape == x.shape
  assert scaled.shards[0].x_test.shape == (1, 4, 4, 1)


@pytest.mark.parametrize('mode', ['federated', 'per_hospital'])
def test_images_are_standardized_per_channel(mode):
  # Federated scaling of (rows, 8, 8, 1) images once failed with a raw TypeError
  # (the statistics computation expected one value per feature name).
  rng = np.random.default_rng(0)
  images = {
    h: rng.normal(loc, 2.0, (6, 8, 8, 3)).astype(np.float32) for h, loc in (('a', 1), ('b', 5))
  }
  y = np.zeros(6, np.int32)
  data = FederatedShards(
    [HospitalShard(h, x, y, x[:2], y[:2], files=[f'{h}.npz']) for h, x in images.items()],
    [f'pixel_{i}' for i in range(8 * 8 * 3)],
    'label',
    2,
  )
  with runtime.local_runtime():
    standardizer = scaling.fit_standardizer(data, mode, federated_moments)
  assert standardizer.mean['a'].shape == (3,)
  scaled = scaling.standardize(data, standardizer)
  if mode == 'federated':
    pooled = np.concatenate([s.x_train for s in scaled.shards])
  else:
    pooled = scaled.shards[0].x_train
  np.testing.assert_allclose(pooled.mean((0, 1, 2)), 0, atol=1e-5)
  np.testing.assert_allclose(pooled.std((0, 1, 2)), 1, atol=1e-4)
