"""The fused engine's aggregators: the math of the model aggregators, on stacked updates.

TFF's `MeanFactory` and tff_med's order statistics (`robust_aggregators`) run
per client inside TFF's `federated_aggregate`; the fused engine has every
hospital's update at hand, so it applies the same functions to them at once:
the weighted mean in TFF's order (a running sum of value x weight, then one
division), the coordinate median, trimmed mean and Multi-Krum over the updates
of non-zero weight (TFF zeroes a non-finite update's weight; it is left out),
and median-norm clipping. `tests/test_fused.py` holds each to TFF's process.
"""

from __future__ import annotations

import tensorflow as tf

from tff_med.learning import robust_aggregators

AGGREGATORS = ('mean', 'median', 'trimmed_mean', 'multi_krum', 'norm_clip')


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


def aggregate(algorithm, updates: list[list[tf.Tensor]], weights: list[tf.Tensor]):
  """The aggregate of `algorithm.aggregator` over the clients' updates and weights."""
  if algorithm.aggregator == 'mean':
    return weighted_mean(updates, weights)
  if algorithm.aggregator == 'norm_clip':
    return _norm_clipped_mean(updates, weights)
  return _order_statistics(algorithm, updates, weights)
