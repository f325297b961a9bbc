"""TF computations that read a hospital's `.npz` image shards on its worker (`npz_view`'s files).

The same loaders as `shard_format.ShardFormat` (training, paired, test,
moments) over images: each split is two serialized tensors the hospital wrote at
start, standardized per channel with the statistics in the client input, as
the simulation standardizes them, so a remote run sees the simulation's batches.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_med.deployment.remote_data import SEPARATOR
from tff_med.deployment.shard_format import MIN_COUNT, SUPPRESSED, ShardFormat, first_row


@dataclasses.dataclass(frozen=True)
class NpzFormat(ShardFormat):
  """`ShardFormat` for image shards of `image_shape` (height, width, channels)."""

  image_shape: tuple[int, ...] = ()
  extension = 'npz'

  def _arrays(self, path):
    x = tf.io.parse_tensor(tf.io.read_file(path + '.x'), tf.float32)
    x.set_shape([None, *self.image_shape])
    y = tf.io.parse_tensor(tf.io.read_file(path + '.y'), tf.int32)
    y.set_shape([None])
    return x, y

  def describe_computation(self):
    """client input -> (image shape 'h,w,c', rows, label histogram, bad row, label column, 0).

    The bad row is the 1-based number of the first label outside the classes (0: none).
    """

    @tff.tensorflow.computation(np.str_)
    def describe_images(spec):
      path = tf.strings.split(spec, SEPARATOR)[0]
      x = tf.io.parse_tensor(tf.io.read_file(path + '.x'), tf.float32)
      y = tf.io.parse_tensor(tf.io.read_file(path + '.y'), tf.int32)
      y.set_shape([None])
      shape = tf.strings.reduce_join(tf.strings.as_string(tf.shape(x)[1:]), separator=',')
      valid = (y >= 0) & (y < self.num_classes)
      histogram = tf.math.bincount(
        tf.boolean_mask(y, valid),
        minlength=self.num_classes,
        maxlength=self.num_classes,
        dtype=tf.int64,
      )
      small = (histogram > 0) & (histogram < MIN_COUNT)
      histogram = tf.where(small, tf.constant(SUPPRESSED, tf.int64), histogram)
      label = tf.constant(len(self.features), tf.int64)  # The label follows the pixels.
      rows = tf.size(y, out_type=tf.int64)
      return shape, rows, histogram, first_row(~valid), label, tf.constant(0, tf.int64)

    return describe_images

  def _examples(self, spec, scaled: bool = True, flip=None):
    parts = tf.strings.split(spec, SEPARATOR)
    x, y = self._arrays(parts[0])
    if scaled:
      mean = tf.strings.to_number(tf.strings.split(parts[3], ';'), tf.float64)
      std = tf.strings.to_number(tf.strings.split(parts[4], ';'), tf.float64)
      x = tf.cast((tf.cast(x, tf.float64) - mean) / std, tf.float32)
      x = tf.ensure_shape(x, [None, *self.image_shape])  # Per-channel statistics keep the shape.
    if flip is not None:  # The label-flip attack: class c becomes (c + 1) mod classes.
      y = tf.where(tf.not_equal(flip, 0), tf.math.floormod(y + 1, self.num_classes), y)
    labels = tf.cast(y, tf.float32)[:, None] if self.num_classes == 2 else y
    seed = tf.strings.to_number(parts[1], tf.int64)
    rows = tf.strings.to_number(parts[2], tf.int64)
    return tf.data.Dataset.from_tensor_slices((x, labels)), seed, rows

  def features_computation(self):
    """client input -> every training pixel as a row of channel values, for federated moments."""

    @tff.tensorflow.computation(np.str_)
    def load_pixels(spec):
      x, _ = self._arrays(tf.strings.split(spec, SEPARATOR)[0])
      return tf.data.Dataset.from_tensor_slices(tf.reshape(x, [-1, self.image_shape[-1]]))

    return load_pixels
