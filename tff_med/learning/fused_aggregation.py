"""The fused engine's aggregators: the math of the model aggregators, on stacked updates.

TFF's `MeanFactory` and tff_med's order statistics (`robust_aggregators`) run
per client inside TFF's `federated_aggregate`; the fused engine has every
hospital's update at hand, so it applies the same functions to them at once:
the weighted mean in TFF's order (a running sum of value x weight, then one
division), the coordinate median, trimmed mean and Multi-Krum over the updates
of non-zero weight (TFF zeroes a non-finite update's weight; it is left out),
median-norm clipping, and TFF's `robust_aggregator` (`robust_mean`): adaptive
zeroing, then adaptive L2 clipping, then the mean, its two norms estimated by
the same `tensorflow_privacy` quantile queries TFF's estimation processes run.
`tests/test_fused.py` holds each to TFF's process.
"""

from __future__ import annotations

import math

import tensorflow as tf
import tensorflow_privacy as tfp

from tff_med.learning import robust_aggregators

AGGREGATORS = ('mean', 'median', 'trimmed_mean', 'multi_krum', 'norm_clip', 'robust')


def _robust_queries():
  # TFF's robust_aggregator: `_default_zeroing` (its report is 2 x estimate + 1) around
  # `_default_clipping` (private in tff.learning.model_update_aggregator; the same values).
  zeroing = tfp.NoPrivacyQuantileEstimatorQuery(10.0, 0.98, math.log(10.0), geometric_update=True)
  clipping = tfp.NoPrivacyQuantileEstimatorQuery(1.0, 0.8, 0.2, geometric_update=True)
  return zeroing, clipping


def initial_state(algorithm) -> tuple:
  """The aggregator's state: the robust aggregator's two quantile estimates, else none."""
  if algorithm.aggregator != 'robust':
    return ()
  return tuple(query.initial_global_state() for query in _robust_queries())


def check(algorithm, num_clients: int) -> None:
  """Refuses the settings TFF's factory would refuse (builds it: the same ConfigError)."""
  if algorithm.aggregator == 'multi_krum':
    robust_aggregators.multi_krum(num_clients, algorithm.krum_byzantine)
  elif algorithm.aggregator == 'trimmed_mean':
    robust_aggregators.trimmed_mean(num_clients, algorithm.trim_fraction)


def weighted_mean(updates: list[list[tf.Tensor]], weights: list[tf.Tensor]) -> list[tf.Tensor]:
  """TFF's `MeanFactory`: sum of value x weight over clients, divided by the weights' sum."""
  total, weight_sum = [tf.zeros_like(t) for t in updates[0]], tf.constant(0.0)
  for update, weight in zip(updates, weights, strict=True):
    total = [s + u * weight for s, u in zip(total, update, strict=True)]
    weight_sum += weight
  return [s / weight_sum for s in total]  # MeanFactory divides without a NaN guard.


def _counted(updates, weights):
  """(stacked rows of the updates with weight > 0, per tensor; their count)."""
  kept = tf.where(tf.stack(weights) > 0)[:, 0]
  rows = [tf.gather(tf.stack(parts), kept) for parts in zip(*updates, strict=True)]
  return rows, tf.cast(tf.size(kept), tf.int32)


def _order_statistics(algorithm, updates, weights):
  rows, count = _counted(updates, weights)

  def reduce():
    if algorithm.aggregator == 'multi_krum':
      return robust_aggregators._multi_krum(rows, count, algorithm.krum_byzantine)  # noqa: SLF001
    trim = algorithm.trim_fraction if algorithm.aggregator == 'trimmed_mean' else None
    return [robust_aggregators._order_statistic(r, count, trim) for r in rows]  # noqa: SLF001

  return tf.cond(count > 0, reduce, lambda: [tf.zeros_like(t) for t in updates[0]])


def _norm_clipped_mean(updates, weights):
  norms = [[tf.reshape(tf.linalg.global_norm(u), [1])] for u in updates]
  rows, count = _counted(norms, weights)
  bound = tf.cond(
    count > 0,
    lambda: robust_aggregators._order_statistic(rows[0], count, None)[0],  # noqa: SLF001
    lambda: tf.constant(0.0),
  )
  clipped = [tf.clip_by_global_norm(u, bound)[0] for u in updates]
  return weighted_mean(clipped, weights)


def _estimate(query, state, values):
  # TFF's PrivateQuantileEstimationProcess.next: the query's records, summed, its result.
  params = query.derive_sample_params(state)
  records = [query.preprocess_record(params, v) for v in values]
  summed = tf.nest.map_structure(lambda *r: tf.add_n(list(r)), *records)
  return query.get_noised_result(summed, state)[1]


def _l2_norm(update):  # As TFF's robust._global_l2_norm.
  return tf.math.sqrt(tf.reduce_sum(tf.stack([tf.norm(a, ord=2) ** 2 for a in update])))


def robust_mean(updates, weights, state):
  """TFF's `robust_aggregator(weighted=True)`: (the mean, the next (zeroing, clipping) state).

  An update whose largest coordinate exceeds 2 x the zeroing estimate + 1 becomes
  zeros (its weight stays); the rest are clipped to the clipping estimate in L2
  norm; both estimates move toward their quantiles (0.98, 0.8) of this round's norms.
  """
  zeroing_query, clipping_query = _robust_queries()
  zeroing_state, clipping_state = state
  bound = 2.0 * zeroing_state.current_estimate + 1.0
  inf_norms = [tf.reduce_max(tf.stack([tf.norm(a, ord=math.inf) for a in u])) for u in updates]
  kept = [
    tf.cond(n > bound, lambda u=u: [tf.zeros_like(a) for a in u], lambda u=u: list(u))
    for u, n in zip(updates, inf_norms, strict=True)
  ]
  clip = clipping_state.current_estimate
  l2_norms = [_l2_norm(u) for u in kept]
  clipped = [
    tf.cond(n > clip, lambda u=u, n=n: [a / (n / clip) for a in u], lambda u=u: list(u))
    for u, n in zip(kept, l2_norms, strict=True)
  ]
  new_state = (
    _estimate(zeroing_query, zeroing_state, inf_norms),
    _estimate(clipping_query, clipping_state, l2_norms),
  )
  return weighted_mean(clipped, weights), new_state


def aggregate_stacked(algorithm, stacked, weights, count: int, state=(), corrupt=None):
  """`aggregate` over `count` clients' [client, ...] tensors and [client] weights;
  `corrupt(k, update)` gives what client k sends under attack.

  The mean of honest updates is one weighted sum per tensor (the loop over clients'
  updates costs graph ops per client: 1.3 ms a round at 256 hospitals, profiled; the
  sum's order differs from TFF's by float rounding, held to 1e-6 in tests/test_fused.py).
  """
  if algorithm.aggregator == 'mean' and corrupt is None:
    total = [tf.tensordot(weights, t, axes=1) for t in stacked]
    return [t / tf.reduce_sum(weights) for t in total], state  # MeanFactory: no NaN guard.
  updates = [list(u) for u in zip(*[tf.unstack(t, num=count) for t in stacked], strict=True)]
  if corrupt is not None:
    updates = [corrupt(k, update) for k, update in enumerate(updates)]
  return aggregate(algorithm, updates, tf.unstack(weights, num=count), state)


def aggregate(algorithm, updates: list[list[tf.Tensor]], weights: list[tf.Tensor], state=()):
  """(The aggregate of `algorithm.aggregator` over the clients' updates and weights, the
  aggregator's next state: see `initial_state`)."""
  if algorithm.aggregator == 'robust':
    return robust_mean(updates, weights, state)
  if algorithm.aggregator == 'mean':
    return weighted_mean(updates, weights), state
  if algorithm.aggregator == 'norm_clip':
    return _norm_clipped_mean(updates, weights), state
  return _order_statistics(algorithm, updates, weights), state
