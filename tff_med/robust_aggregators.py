"""Coordinate-wise median and trimmed mean as TFF aggregation factories.

TFF ships mean-based robust aggregation (`tff.learning.robust_aggregator`:
adaptive clipping and zeroing) but no order-statistic aggregator, so these are
ours. They follow Yin et al., "Byzantine-Robust Distributed Learning" (ICML
2018), as Flower's FedMedian and FedTrimmedAvg do.

Each is a `WeightedAggregationFactory` so it plugs into TFF's weighted
algorithms, but it ignores weights except for one purpose: a client whose
weight is 0 (TFF zeroes non-finite updates that way) is left out of the
order statistic instead of counting as a zero vote. Client values are
gathered with `tff.federated_aggregate` into a fixed buffer of `max_clients`
rows (ordering statistics need all values at once), so `max_clients` must be
at least the number of hospitals in a round.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_federated as tff

from tff_med.errors import ConfigError


def _order_statistic(rows: tf.Tensor, count: tf.Tensor, trim_fraction: float | None) -> tf.Tensor:
  """Median (trim_fraction None) or trimmed mean over the first `count` rows, per coordinate."""
  values = tf.sort(rows[:count], axis=0)
  if trim_fraction is None:
    lower = (count - 1) // 2
    upper = count // 2
    return (tf.gather(values, lower) + tf.gather(values, upper)) / 2
  cut = tf.cast(tf.math.floor(trim_fraction * tf.cast(count, tf.float32)), tf.int32)
  return tf.reduce_mean(values[cut : count - cut], axis=0)


class OrderStatisticFactory(tff.aggregators.WeightedAggregationFactory):
  """Coordinate-wise median (`trim_fraction=None`) or trimmed mean of client values."""

  def __init__(self, max_clients: int, trim_fraction: float | None = None):
    if max_clients < 1:
      raise ConfigError(f'max_clients must be >= 1, got {max_clients}')
    if trim_fraction is not None and not 0 <= trim_fraction < 0.5:
      raise ConfigError(
        f'trim_fraction must be in [0, 0.5), got {trim_fraction}: trimming half '
        'or more from each side leaves no value to average'
      )
    self._max_clients = max_clients
    self._trim_fraction = trim_fraction

  def create(self, value_type, weight_type) -> tff.templates.AggregationProcess:
    """Builds the aggregation process for client values of `value_type`."""
    specs = tf.nest.map_structure(
      lambda t: tf.TensorSpec(t.shape, t.dtype), tff.types.type_to_tf_tensor_specs(value_type)
    )
    k, trim = self._max_clients, self._trim_fraction

    def empty():
      return (
        tf.nest.map_structure(lambda s: tf.zeros([k, *s.shape], s.dtype), specs),
        tf.constant(0, tf.int32),
      )

    @tff.tensorflow.computation
    def zero():
      return empty()

    accumulator_type = zero.type_signature.result

    @tff.tensorflow.computation(accumulator_type, (value_type, weight_type))
    def accumulate(acc, item):
      (buffers, count), (value, weight) = acc, item
      counted = weight > 0  # Zero weight: TFF zeroed a non-finite update; leave it out.
      stored = tf.logical_and(counted, count < k)
      row = tf.minimum(count, k - 1)
      updated = tf.nest.map_structure(
        lambda b, v: tf.where(stored, tf.tensor_scatter_nd_update(b, [[row]], [v]), b),
        buffers,
        value,
      )
      return updated, count + tf.cast(counted, tf.int32)

    @tff.tensorflow.computation(accumulator_type, accumulator_type)
    def merge(a, b):
      (buf_a, n_a), (buf_b, n_b) = a, b
      keep_a, keep_b = tf.minimum(n_a, k), tf.minimum(n_b, k)
      merged = tf.nest.map_structure(
        lambda x, y: tf.ensure_shape(
          tf.concat([x[:keep_a], y[:keep_b], tf.zeros_like(x)], 0)[:k], x.shape
        ),
        buf_a,
        buf_b,
      )
      return merged, n_a + n_b  # The true count, so report can refuse an overflow.

    @tff.tensorflow.computation(accumulator_type)
    def report(acc):
      buffers, count = acc
      check = tf.debugging.assert_less_equal(
        count,
        k,
        message=f'more clients in a round than max_clients={k} of the median/'
        'trimmed-mean aggregator; none is dropped silently: raise max_clients',
      )
      with tf.control_dependencies([check]):
        count = tf.identity(count)
      return tf.nest.map_structure(
        lambda b: tf.cond(
          count > 0, lambda: _order_statistic(b, count, trim), lambda: tf.zeros_like(b[0])
        ),
        buffers,
      )

    @tff.federated_computation()
    def init():
      return tff.federated_value((), tff.SERVER)

    @tff.federated_computation(
      init.type_signature.result,
      tff.FederatedType(value_type, tff.CLIENTS),
      tff.FederatedType(weight_type, tff.CLIENTS),
    )
    def next_fn(state, value, weight):
      result = tff.federated_aggregate(
        tff.federated_zip((value, weight)), zero(), accumulate, merge, report
      )
      return tff.templates.MeasuredProcessOutput(state, result, tff.federated_value((), tff.SERVER))

    return tff.templates.AggregationProcess(init, next_fn)


def coordinate_median(max_clients: int) -> OrderStatisticFactory:
  """Coordinate-wise median of the client updates (Flower's FedMedian)."""
  return OrderStatisticFactory(max_clients)


def trimmed_mean(max_clients: int, trim_fraction: float) -> OrderStatisticFactory:
  """Mean after dropping the `trim_fraction` largest and smallest values per coordinate."""
  return OrderStatisticFactory(max_clients, trim_fraction)
