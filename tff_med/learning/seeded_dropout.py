"""Dropout whose masks are a stateless function of a seed and the batch: reproducible anywhere.

Keras's `Dropout` draws its masks from a stateful random op. Under TFF that op
is re-created inside every call of the client computation, so two seeded runs
of the same study train differently (measured 2026-12-05: the weights after
three rounds differ between two runs in one process), and XLA compiles it to
its own generator, so the fused engine could not match it either. TFF and Keras
have no dropout that is the same in both; this one is ours.

Each mask is drawn by Philox (`StatelessRandomUniformFullIntV2`) keyed on the
layer's seed and a hash of the model's input batch (its float bits, weighted by
position, modulo 2^31 - 1: integer arithmetic, so the same under any summation
order). A unit is kept when its 32 random bits reach `rate` * 2^32. XLA's and
TensorFlow's Philox give the same bits (their float conversions differ, so no
float uniform is drawn): the fused engine's masks are TFF's, bit for bit. Every
batch is a new draw in practice, since each pass over a shard visits its rows
in a new order (`clients.shuffle`); a batch seen again in the same order (a
hospital with one row) gets the same mask again.
"""

from __future__ import annotations

import tensorflow as tf

_PRIME = 2**31 - 1
_PHILOX = 1  # tf.random.Algorithm.PHILOX


def batch_hash(batch: tf.Tensor) -> tf.Tensor:
  """An int64 in [0, 2^31 - 1) that changes with any bit or the order of `batch`'s values."""
  bits = tf.cast(tf.bitcast(tf.cast(batch, tf.float32), tf.int32), tf.int64)
  bits = tf.math.floormod(tf.reshape(bits, [-1]), _PRIME)
  position = tf.range(1, tf.size(bits, out_type=tf.int64) + 1, dtype=tf.int64)
  weight = tf.math.floormod(position * 2654435761, _PRIME)
  # Each product is below 2^62 and each term below 2^31: the sum cannot overflow int64.
  return tf.math.floormod(tf.reduce_sum(tf.math.floormod(bits * weight, _PRIME)), _PRIME)


def keep_mask(shape, seed: tf.Tensor, rate: float) -> tf.Tensor:
  """A bool mask of `shape`, True with probability 1 - `rate`, from int64 [2] `seed`."""
  key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed)
  bits = tf.raw_ops.StatelessRandomUniformFullIntV2(
    shape=shape, key=key, counter=counter, alg=_PHILOX, dtype=tf.uint32
  )
  return tf.cast(bits, tf.int64) >= int(round(rate * 2**32))


def seeds(keras_model: tf.keras.Model) -> tuple[int, ...]:
  """The seeds of `keras_model`'s `SeededDropout` layers: its traced training depends on them."""
  return tuple(layer.seed for layer in keras_model.layers if isinstance(layer, SeededDropout))


@tf.keras.utils.register_keras_serializable(package='tff_med')
class SeededDropout(tf.keras.layers.Layer):
  """Dropout of its first input, its masks drawn from `seed` and its second (the model's input).

  Call it as `SeededDropout(rate, seed)([activations, model_inputs])`. In
  training it zeroes each activation with probability `rate` and scales the
  rest by 1 / (1 - `rate`), as Keras's `Dropout` does; otherwise it passes
  the activations through.
  """

  def __init__(self, rate: float, seed: int, **kwargs):
    super().__init__(**kwargs)
    if not 0 <= rate < 1:
      raise ValueError(f'dropout rate must be in [0, 1), got {rate}')
    self.rate, self.seed = float(rate), int(seed)

  def call(self, inputs, training=None):
    """The activations, dropped out in training."""
    activations, batch = inputs
    if training is None:
      training = tf.keras.backend.learning_phase()

    def dropped():
      seed = tf.stack([tf.constant(self.seed, tf.int64), batch_hash(batch)])
      kept = keep_mask(tf.shape(activations), seed, self.rate)
      scaled = activations * (1 / (1 - self.rate))
      return tf.where(kept, scaled, tf.zeros_like(scaled))

    return tf.__internal__.smart_cond.smart_cond(
      training, dropped, lambda: tf.identity(activations)
    )

  def compute_output_shape(self, input_shape):
    """The activations' shape."""
    return input_shape[0]

  def get_config(self) -> dict:
    """The layer's config, so a saved model loads with it."""
    return {**super().get_config(), 'rate': self.rate, 'seed': self.seed}
