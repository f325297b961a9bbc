"""TFF computations that compute federation-wide statistics from per-hospital sums.

Only aggregates cross the hospital boundary: each client maps its own data to
sums and counts (`tff.federated_map`), and the server sees their
`tff.federated_sum`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_med import runtime  # noqa: F401  (installs the owned TFF context these calls run in)


def _moments_computation(dim: int):
  @tff.tensorflow.computation(tff.TensorType(np.float32, [None, dim]))
  def local_moments(x):
    x = tf.cast(x, tf.float64)
    return tf.reduce_sum(x, 0), tf.reduce_sum(tf.square(x), 0), tf.cast(tf.shape(x)[0], tf.float64)

  @tff.federated_computation(
    tff.FederatedType(tff.TensorType(np.float32, [None, dim]), tff.CLIENTS)
  )
  def moments(client_x):
    return tff.federated_sum(tff.federated_map(local_moments, client_x))

  return moments


def federated_moments(client_arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
  """Returns (sum, sum of squares, count) of features summed over hospitals.

  Args:
    client_arrays: One (rows, features) float32 array per hospital; each stays
      with its client and only its three sums are aggregated.
  """
  dim = client_arrays[0].shape[1]
  total, total_sq, count = _moments_computation(dim)(client_arrays)
  return np.asarray(total), np.asarray(total_sq), float(count)


def dataset_moments_computation(dim: int):
  """Like `federated_moments`, over each hospital's dataset of feature rows (remote shards).

  A federated computation on datasets of float32 [dim] rows; compose it with a
  loader (`tff.simulation.compose_dataset_computation_with_computation`) so each
  worker reads its own shard.
  """

  @tff.tensorflow.computation(tff.SequenceType(tff.TensorType(np.float32, [dim])))
  def local_moments(rows):
    def add(acc, x):
      x = tf.cast(x, tf.float64)
      return acc[0] + x, acc[1] + tf.square(x), acc[2] + 1.0

    zeros = tf.zeros([dim], tf.float64)
    return rows.reduce((zeros, zeros, tf.constant(0.0, tf.float64)), add)

  @tff.federated_computation(
    tff.FederatedType(tff.SequenceType(tff.TensorType(np.float32, [dim])), tff.CLIENTS)
  )
  def moments(client_rows):
    return tff.federated_sum(tff.federated_map(local_moments, client_rows))

  return moments
