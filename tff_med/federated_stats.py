"""TFF computations that compute federation-wide statistics from per-hospital sums.

Only aggregates cross the hospital boundary: each client maps its own data to
sums and counts (`tff.federated_map`), and the server sees their
`tff.federated_sum`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff


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
