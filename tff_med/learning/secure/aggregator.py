"""The masked weighted mean as a TFF aggregation factory.

At each hospital (`tff.federated_map`): the update is clipped to [-clip, clip]
per coordinate, quantized to an integer q in [0, L - 1] (L = 2^quantization_bits,
rounding to the nearest level), multiplied by the hospital's integer weight w,
and sent as (w * q + mask) mod M, M = 2^modulus_bits, with its weight in the
clear. The coordinator's runtime sums what arrives (`tff.federated_sum`) and,
after reducing modulo M (the masks cancel), decodes the weighted mean:

  mean = (S * step - clip * W) / W,  step = 2 * clip / (L - 1),  W = sum of w.

So long as W * (L - 1) < M (`settings.check_modulus`), S is exact and the mean
differs from the plain weighted mean of the clipped updates by at most step / 2
per coordinate. The client values it takes are (update, mask) pairs
(`client_work.build_masked_client_work`).
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

CLIPPED = 'secure_clipped_coordinates'


@dataclasses.dataclass(frozen=True)
class Quantization:
  """How updates become integers modulo 2^modulus_bits."""

  clip: float
  quantization_bits: int
  modulus_bits: int
  max_weight: int = 1  # A hospital's weight above this stops the round (the sum could wrap).

  @property
  def step(self) -> float:
    """The width of one quantization level (the decoded mean is within step / 2)."""
    return 2 * self.clip / (2**self.quantization_bits - 1)


def _leaves(type_spec) -> list:
  """The tensor types of a structure, in order."""
  if isinstance(type_spec, tff.TensorType):
    return [type_spec]
  return list(tff.structure.flatten(type_spec))


def encode(update, weight, mask, q: Quantization):
  """(masked integer vector, clipped coordinate count) one hospital sends."""
  flat = tf.concat([tf.reshape(tf.cast(u, tf.float64), [-1]) for u in tf.nest.flatten(update)], 0)
  clipped = tf.reduce_sum(tf.cast(tf.abs(flat) > q.clip, tf.int32))
  levels = tf.round((tf.clip_by_value(flat, -q.clip, q.clip) + q.clip) / q.step)
  w = tf.cast(tf.round(tf.cast(weight, tf.float64)), tf.int64)
  checked = tf.debugging.assert_less_equal(
    w, tf.constant(q.max_weight, tf.int64), message='secure aggregation: weight above its bound'
  )
  with tf.control_dependencies([checked]):
    weighted = w * tf.cast(levels, tf.int64)
  return tf.math.floormod(weighted + mask, 2**q.modulus_bits), clipped


def decode(total, weight_sum, update_type, q: Quantization):
  """The weighted mean, shaped as `update_type`, from the sum of what the hospitals sent."""
  exact = tf.cast(tf.math.floormod(total, 2**q.modulus_bits), tf.float64)
  w = tf.cast(weight_sum, tf.float64)
  flat = (exact * q.step - q.clip * w) / w
  leaves = _leaves(update_type)
  sizes = [int(np.prod(t.shape)) for t in leaves]
  parts = [
    tf.cast(tf.reshape(p, t.shape), t.dtype)
    for p, t in zip(tf.split(flat, sizes), leaves, strict=True)
  ]
  if isinstance(update_type, tff.TensorType):
    return parts[0]
  packed = tff.structure.pack_sequence_as(update_type, parts)
  return tff.types.type_to_py_container(packed, update_type)


class MaskedMeanFactory(tff.aggregators.WeightedAggregationFactory):
  """The weighted mean of the hospitals' updates, each revealed only masked.

  `create(value_type, weight_type)` takes `value_type` = <update, mask> (the
  mask an int64 vector of the update's `flat_size`); the result is the mean
  update. Measurement `secure_clipped_coordinates`: coordinates clipped this
  round, summed over hospitals.
  """

  def __init__(self, quantization: Quantization):
    self._q = quantization

  def create(self, value_type, weight_type) -> tff.templates.AggregationProcess:
    update_type, mask_type = value_type[0], value_type[1]
    q = self._q

    @tff.tensorflow.computation(value_type, weight_type)
    def client_encode(value, weight):
      return encode(value[0], weight, value[1], q)

    @tff.tensorflow.computation(mask_type, weight_type)
    def server_decode(total, weight_sum):
      return decode(total, weight_sum, update_type, q)

    @tff.federated_computation()
    def init_fn():
      return tff.federated_value((), tff.SERVER)

    @tff.federated_computation(
      init_fn.type_signature.result,
      tff.FederatedType(value_type, tff.CLIENTS),
      tff.FederatedType(weight_type, tff.CLIENTS),
    )
    def next_fn(state, value, weight):
      masked, clipped = tff.federated_map(client_encode, (value, weight))
      mean = tff.federated_map(
        server_decode, (tff.federated_sum(masked), tff.federated_sum(weight))
      )
      measurements = tff.federated_zip(
        collections.OrderedDict({CLIPPED: tff.federated_sum(clipped)})
      )
      return tff.templates.MeasuredProcessOutput(state, mean, measurements)

    return tff.templates.AggregationProcess(init_fn, next_fn)
