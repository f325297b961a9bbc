"""Makes TFF's silent handling of non-finite updates visible.

TFF's client work (`model_delta_client_work`) replaces a client update that
holds NaN or Inf with zeros and gives it weight 0, and TFF's finalizer leaves
the model unchanged when the aggregate is non-finite, reporting only
`finalizer/update_non_finite`. Neither raises. `CountZeroWeightFactory` wraps
the model aggregator and adds a measurement, `zero_weight_clients`: the number
of clients whose update arrived with weight 0 this round. Training shards are
never empty (validation rejects them), so a zero weight means a client's update
was non-finite. TFF has no such measurement; this factory is ours.
"""

from __future__ import annotations

import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

ZERO_WEIGHT_CLIENTS = 'zero_weight_clients'


class CountZeroWeightFactory(tff.aggregators.WeightedAggregationFactory):
  """Wraps a weighted factory and counts clients that were given weight 0."""

  def __init__(self, inner: tff.aggregators.WeightedAggregationFactory | None = None):
    self._inner = inner or tff.aggregators.MeanFactory()

  def create(self, value_type, weight_type) -> tff.templates.AggregationProcess:
    inner = self._inner.create(value_type, weight_type)

    @tff.tensorflow.computation(weight_type)
    def is_zero(weight):
      return tf.cast(tf.equal(weight, 0), np.int32)

    @tff.federated_computation(
      inner.next.type_signature.parameter[0],
      tff.FederatedType(value_type, tff.CLIENTS),
      tff.FederatedType(weight_type, tff.CLIENTS),
    )
    def next_fn(state, value, weight):
      output = inner.next(state, value, weight)
      zeroed = tff.federated_sum(tff.federated_map(is_zero, weight))
      measurements = tff.federated_zip(
        collections.OrderedDict(inner=output.measurements, **{ZERO_WEIGHT_CLIENTS: zeroed})
      )
      return tff.templates.MeasuredProcessOutput(output.state, output.result, measurements)

    return tff.templates.AggregationProcess(inner.initialize, next_fn)


def round_faults(metrics) -> tuple[int, bool]:
  """Returns (clients zeroed, aggregate rejected) from a round's TFF metrics."""
  aggregator = metrics.get('aggregator', {})
  finalizer = metrics.get('finalizer', {})
  zeroed = int(aggregator.get(ZERO_WEIGHT_CLIENTS, 0))
  rejected = bool(finalizer.get('update_non_finite', 0))
  return zeroed, rejected
