"""TF computations that read a hospital's shard where it lives, on that hospital's worker.

The coordinator sends only strings: a client input names a shard file relative
to the worker's data root, plus the shuffle seed, the row count and which
standardization statistics to use ('cleveland/train.csv|seed|rows|index'). The
worker parses the CSV, standardizes, shuffles and batches exactly as the
simulation does with in-memory arrays (`client_data.training_dataset`), so a
remote run and a simulated one see the same batches.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_med.data import client_data

SEPARATOR = '|'


def client_input(hospital: str, split: str, *, seed: int = 0, rows: int = 0, index: int = 0) -> str:
  """The string a hospital's worker turns into its `split` dataset."""
  return SEPARATOR.join([f'{hospital}/{split}.csv', str(seed), str(rows), str(index)])


def _lines(path):
  content = tf.strings.regex_replace(tf.io.read_file(path), '\r', '')
  lines = tf.strings.split(tf.strings.strip(content), '\n')
  return lines[0], lines[1:]


# A label cell the hospital accepts: a whole number, optionally written as '1.0'.
_WHOLE_NUMBER = r'\s*[0-9]+(\.0*)?\s*'


@tff.tensorflow.computation(np.str_, np.str_, np.int32)
def describe_shard(path, label, num_classes):
  """(header line, data rows, label histogram, first bad label row) of a shard on the worker.

  Runs at the hospital, for the label the coordinator's study names: the label
  values come back as counts per class 0..num_classes-1 (aggregates, never
  rows), and the 1-based number of the first row whose label is missing, not
  a whole number or outside the classes (0 when every row is fine; -1 when the
  file has no such column), so the coordinator can name the row without
  seeing it.
  """
  header, rows = _lines(path)
  columns = tf.strings.strip(tf.strings.split(header, ','))
  index = tf.cast(tf.reshape(tf.where(tf.equal(columns, label)), [-1]), tf.int32)
  found = tf.size(index) > 0
  index = tf.cond(found, lambda: index[0], lambda: tf.constant(0))
  cells = tf.cond(
    found,
    lambda: tf.gather(tf.strings.split(rows, ','), index, axis=1),
    lambda: tf.fill(tf.shape(rows), ''),
  )
  whole = tf.strings.regex_full_match(cells, _WHOLE_NUMBER)
  values = tf.strings.to_number(tf.where(whole, cells, '-1'), tf.float64)
  valid = whole & (values < tf.cast(num_classes, tf.float64))
  labels = tf.cast(tf.boolean_mask(values, valid), tf.int32)
  histogram = tf.math.bincount(labels, minlength=num_classes, maxlength=num_classes, dtype=tf.int64)
  invalid = tf.cast(tf.where(tf.logical_not(valid)), tf.int64)
  bad_row = tf.cond(
    tf.size(invalid) > 0, lambda: invalid[0, 0] + 1, lambda: tf.constant(0, tf.int64)
  )
  bad_row = tf.where(found, bad_row, tf.constant(-1, tf.int64))
  return header, tf.size(rows, out_type=tf.int64), histogram, bad_row


@dataclasses.dataclass(frozen=True)
class ShardFormat:
  """How to turn a shard's CSV rows into `(features, label)` examples."""

  columns: tuple[str, ...]
  features: tuple[str, ...]
  label: str
  num_classes: int
  mean: np.ndarray  # [standardization groups, features], float64
  std: np.ndarray

  @classmethod
  def unscaled(cls, columns, features, label: str, num_classes: int) -> ShardFormat:
    """A format that leaves features as they are (one group, mean 0, std 1)."""
    dim = len(features)
    return cls(
      tuple(columns), tuple(features), label, num_classes, np.zeros((1, dim)), np.ones((1, dim))
    )

  def _example_fn(self, index):
    feature_idx = [self.columns.index(f) for f in self.features]
    label_idx = self.columns.index(self.label)
    selected = sorted({*feature_idx, label_idx})
    position = {c: i for i, c in enumerate(selected)}
    mean = tf.constant(self.mean, tf.float64)[index]
    std = tf.constant(self.std, tf.float64)[index]
    binary = self.num_classes == 2

    def example(*values):
      x = tf.stack([values[position[i]] for i in feature_idx])
      x = tf.cast((tf.cast(x, tf.float64) - mean) / std, tf.float32)
      y = values[position[label_idx]]
      return x, tf.reshape(y, [1]) if binary else tf.cast(y, tf.int32)

    return selected, example

  def _examples(self, spec):
    parts = tf.strings.split(spec, SEPARATOR)
    index = tf.strings.to_number(parts[3], tf.int32)
    selected, example = self._example_fn(index)
    dataset = tf.data.experimental.CsvDataset(
      parts[0], [tf.float32] * len(selected), header=True, select_cols=selected
    )
    seed = tf.strings.to_number(parts[1], tf.int64)
    rows = tf.strings.to_number(parts[2], tf.int64)
    return dataset.map(example), seed, rows

  def train_computation(self, plan: client_data.LocalTraining):
    """tf.string -> the shard's training dataset for one round (shuffled with the given seed)."""

    @tff.tensorflow.computation(np.str_)
    def load_train(spec):
      examples, seed, rows = self._examples(spec)
      return client_data.training_dataset(examples, rows, plan, seed)

    return load_train

  def test_computation(self, batch_size: int):
    """tf.string -> the shard's test dataset, batched for evaluation."""

    @tff.tensorflow.computation(np.str_)
    def load_test(spec):
      examples, _, _ = self._examples(spec)
      return examples.batch(batch_size)

    return load_test

  def features_computation(self):
    """tf.string -> the shard's raw (unstandardized) feature rows, for federated moments."""
    raw = ShardFormat.unscaled(self.columns, self.features, self.label, self.num_classes)

    @tff.tensorflow.computation(np.str_)
    def load_features(spec):
      examples, _, _ = raw._examples(spec)
      return examples.map(lambda x, y: x)

    return load_features
