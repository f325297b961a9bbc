"""Coordinate-wise median and trimmed mean, checked against values worked out by hand."""

import numpy as np
import pytest
import tensorflow_federated as tff

from tff_med import runtime
from tff_med.errors import ConfigError
from tff_med.learning import robust_aggregators

VALUE_TYPE = tff.StructWithPythonType(
  [tff.TensorType(np.float32), tff.TensorType(np.float32, [2])], list
)
# Four hospitals; the last one sends garbage.
VALUES = [[1.0, [1.0, 10.0]], [2.0, [2.0, 20.0]], [3.0, [3.0, 30.0]], [100.0, [-100.0, 1e6]]]


def aggregate(factory, weights):
  process = factory.create(VALUE_TYPE, tff.TensorType(np.float32))
  with runtime.local_runtime():
    return process.next(process.initialize(), VALUES, weights).result


def test_median_ignores_the_outlier():
  scalar, vector = aggregate(robust_aggregators.coordinate_median(4), [1.0] * 4)
  assert scalar == pytest.approx(2.5)  # median of 1, 2, 3, 100
  np.testing.assert_allclose(vector, [1.5, 25.0])  # of (-100, 1, 2, 3) and (10, 20, 30, 1e6)


def test_zero_weight_clients_are_left_out_not_counted_as_zero():
  scalar, vector = aggregate(robust_aggregators.coordinate_median(4), [1.0, 0.0, 1.0, 1.0])
  assert scalar == pytest.approx(3.0)  # median of 1, 3, 100
  np.testing.assert_allclose(vector, [1.0, 30.0])


def test_trimmed_mean_drops_the_extremes_of_each_coordinate():
  scalar, vector = aggregate(robust_aggregators.trimmed_mean(4, 0.25), [1.0] * 4)
  assert scalar == pytest.approx(2.5)  # mean of 2, 3 after cutting 1 and 100
  np.testing.assert_allclose(vector, [1.5, 25.0])


def test_max_clients_below_one_is_a_config_error():
  with pytest.raises(ConfigError, match='max_clients must be >= 1'):
    robust_aggregators.coordinate_median(0)


def test_more_clients_than_max_clients_fails_instead_of_dropping_one():
  with pytest.raises(Exception, match='more clients in a round than max_clients=3'):
    aggregate(robust_aggregators.coordinate_median(3), [1.0] * 4)


def test_multi_krum_leaves_out_the_update_far_from_the_others():
  scalar, vector = aggregate(robust_aggregators.multi_krum(4, byzantine=1), [1.0] * 4)
  assert scalar == pytest.approx(2.0)  # mean of the three honest hospitals
  np.testing.assert_allclose(vector, [2.0, 20.0])


def test_multi_krum_needs_room_for_honest_neighbours():
  with pytest.raises(ConfigError, match=r'krum_byzantine must be in \[1, hospitals - 1\)'):
    robust_aggregators.multi_krum(4, byzantine=3)


def test_norm_clip_cuts_the_outlier_to_the_median_norm():
  scalar, vector = aggregate(robust_aggregators.MedianNormClipFactory(4), [1.0] * 4)
  norms = [np.linalg.norm([v[0], *v[1]]) for v in VALUES]
  bound = (sorted(norms)[1] + sorted(norms)[2]) / 2
  clipped = [
    np.array([v[0], *v[1]]) * min(1.0, bound / n) for v, n in zip(VALUES, norms, strict=True)
  ]
  np.testing.assert_allclose([scalar, *vector], np.mean(clipped, axis=0), rtol=1e-5)
  assert np.linalg.norm([scalar, *vector]) <= bound
