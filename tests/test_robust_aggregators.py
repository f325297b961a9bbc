"""Coordinate-wise median and trimmed mean, checked against values worked out by hand."""

import numpy as np
import pytest
import tensorflow_federated as tff

from tff_med import robust_aggregators, runtime
from tff_med.errors import ConfigError

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
