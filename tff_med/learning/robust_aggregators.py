"""Coordinate-wise median, trimmed mean, Multi-Krum and median-norm clipping as TFF factories.

TFF ships mean-based robust aggregation (`tff.learning.robust_aggregator`:
adaptive clipping and zeroing) but no order-statistic aggregator, so these are
ours. They follow Yin et al., "Byzantine-Robust Distributed Learning" (ICML
2018), as Flower's FedMedian and FedTrimmedAvg do; Multi-Krum follows Blanchard
et al. (NeurIPS 2017), as Flower's Krum does.

Each is a `WeightedAggregationFactory` so it plugs into TFF's weighted
algorithms, but it ignores weights except for one purpose: a client whose
weight is 0 (TFF zeroes non-finite updates that way) is left out of the
order statistic instead of counting as a zero vote. Client values are
gathered with `tff.federated_aggregate` into a fixed buffer of `max_clients`
rows (ordering statistics need all values at once), so `max_clients` must be
at least the number of hospitals in a round.
"""

from __future__ import annotations

import numpy as np
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


def _multi_krum(buffers, count: tf.Tensor, byzantine: int):
  """Mean of the `count - byzantine` rows with the lowest Krum scores (Blanchard et al., 2017).

  A row's score is the sum of squared distances to its `count - byzantine - 2`
  nearest other rows (at least one), over all tensors jointly.
  """
  flat = tf.concat([tf.reshape(b[:count], [count, -1]) for b in tf.nest.flatten(buffers)], axis=1)
  squared = tf.reduce_sum(flat**2, axis=1)
  distances = squared[:, None] + squared[None, :] - 2 * tf.matmul(flat, flat, transpose_b=True)
  neighbours = tf.maximum(count - byzantine - 2, 1)
  # Each row's own distance (0) sorts first; skip it.
  nearest = tf.sort(distances, axis=1)[:, 1 : neighbours + 1]
  scores = tf.reduce_sum(nearest, axis=1)
  keep = tf.maximum(count - byzantine, 1)
  chosen = tf.argsort(scores)[:keep]
  return tf.nest.map_structure(lambda b: tf.reduce_mean(tf.gather(b, chosen), axis=0), buffers)


class OrderStatisticFactory(tff.aggregators.WeightedAggregationFactory):
  """Coordinate-wise median (`trim_fraction=None`) or trimmed mean of client values.

  With `krum_byzantine` set instead, Multi-Krum: the mean of the updates
  closest to their neighbours, leaving out `krum_byzantine` of them.
  """

  def __init__(
    self,
    max_clients: int,
    trim_fraction: float | None = None,
    *,
    krum_byzantine: int | None = None,
  ):
    if max_clients < 1:
      raise ConfigError(f'max_clients must be >= 1, got {max_clients}')
    if trim_fraction is not None and not 0 <= trim_fraction < 0.5:
      raise ConfigError(
        f'trim_fraction must be in [0, 0.5), got {trim_fraction}: trimming half '
        'or more from each side leaves no value to average'
      )
    if krum_byzantine is not None and not 1 <= krum_byzantine < max_clients - 1:
      raise ConfigError(
        f'krum_byzantine must be in [1, hospitals - 1) = [1, {max_clients - 1}), '
        f'got {krum_byzantine}'
      )
    self._max_clients = max_clients
    self._trim_fraction = trim_fraction
    self._krum_byzantine = krum_byzantine

  def _reduce(self, buffers, count):
    if self._krum_byzantine is not None:
      return _multi_krum(buffers, count, self._krum_byzantine)
    return tf.nest.map_structure(lambda b: _order_statistic(b, count, self._trim_fraction), buffers)

  def create(self, value_type, weight_type) -> tff.templates.AggregationProcess:
    """Builds the aggregation process for client values of `value_type`."""
    specs = tf.nest.map_structure(
      lambda t: tf.TensorSpec(t.shape, t.dtype), tff.types.type_to_tf_tensor_specs(value_type)
    )
    k = self._max_clients

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
      return tf.cond(
        count > 0,
        lambda: self._reduce(buffers, count),
        lambda: tf.nest.map_structure(lambda b: tf.zeros_like(b[0]), buffers),
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


def multi_krum(max_clients: int, byzantine: int) -> OrderStatisticFactory:
  """Multi-Krum: the mean of all but the `byzantine` updates farthest from their neighbours.

  Flower's Krum strategy; Blanchard et al. prove robustness for
  `hospitals >= 2 * byzantine + 3`. With fewer hospitals it still drops the
  outliers but without that guarantee.
  """
  return OrderStatisticFactory(max_clients, krum_byzantine=byzantine)


def trimmed_mean(max_clients: int, trim_fraction: float) -> OrderStatisticFactory:
  """Mean after dropping the `trim_fraction` largest and smallest values per coordinate."""
  return OrderStatisticFactory(max_clients, trim_fraction)


class MedianNormClipFactory(tff.aggregators.WeightedAggregationFactory):
  """Clips each client update to the round's median update norm, then takes the weighted mean.

  Norm bounding (Sun et al., "Can You Really Backdoor Federated Learning?",
  2019) with the bound set each round to the median of the clients' update norms
  (computed by `OrderStatisticFactory`), so no threshold has to be tuned or
  learned across rounds (TFF's adaptive clipping moves its bound slowly). An
  attacker's scaled update is cut to an honest length. Ours: TFF has no
  median-norm clipping.
  """

  def __init__(self, max_clients: int):
    self._median = OrderStatisticFactory(max_clients)

  def create(self, value_type, weight_type) -> tff.templates.AggregationProcess:
    """Builds the aggregation process for client values of `value_type`."""
    norm_type = tff.TensorType(np.float32)
    median = self._median.create(norm_type, weight_type)
    mean = tff.aggregators.MeanFactory().create(value_type, weight_type)

    @tff.tensorflow.computation(value_type)
    def global_norm(value):
      return tf.linalg.global_norm(tf.nest.flatten(value))

    @tff.tensorflow.computation(value_type, norm_type)
    def clip(value, bound):
      flat = tf.nest.flatten(value)
      clipped, _ = tf.clip_by_global_norm(flat, bound)
      return tf.nest.pack_sequence_as(value, clipped)

    @tff.federated_computation()
    def init():
      return tff.federated_zip((median.initialize(), mean.initialize()))

    @tff.federated_computation(
      init.type_signature.result,
      tff.FederatedType(value_type, tff.CLIENTS),
      tff.FederatedType(weight_type, tff.CLIENTS),
    )
    def next_fn(state, value, weight):
      bound = median.next(state[0], tff.federated_map(global_norm, value), weight)
      clipped = tff.federated_map(clip, (value, tff.federated_broadcast(bound.result)))
      averaged = mean.next(state[1], clipped, weight)
      return tff.templates.MeasuredProcessOutput(
        tff.federated_zip((bound.state, averaged.state)),
        averaged.result,
        tff.federated_zip({'clip_norm': bound.result, 'mean': averaged.measurements}),
      )

    return tff.templates.AggregationProcess(init, next_fn)
