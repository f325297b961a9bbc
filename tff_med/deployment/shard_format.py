"""TF computations that read a hospital's CSV shard where it lives, on that hospital's worker.

Every computation depends on the config alone (columns are found by name in
the shard's header, statistics arrive as data in the client input), so the plan
a hospital approves can be exported before anyone has seen a shard. Cells are
read as `data.csv_reader` reads them (missing tokens, true/false), the
missing-value policy is applied as `data.shards` applies it (drop the row, or
impute the hospital's training mean), and rows are standardized, shuffled and
batched exactly as the simulation does with in-memory arrays
(`client_data.training_dataset`), so a remote run sees the simulation's batches.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_med.clients import client_data
from tff_med.data import csv_reader
from tff_med.deployment.remote_data import SEPARATOR

# The smallest label count a hospital discloses; 1..MIN_COUNT-1 is reported as SUPPRESSED.
MIN_COUNT = 5
SUPPRESSED = -1
# The training-split input of an attacked run's loader: the label-flip flag and the client input.
FLIP_INPUT = tff.StructType([('flip', np.int32), ('data', np.str_)])


def _numbers(cells):
  """String cells -> float64, NaN where missing, 1/0 for true/yes and false/no."""
  lowered = tf.strings.lower(tf.strings.strip(cells))
  missing = tf.reduce_any(tf.equal(lowered[..., None], sorted(csv_reader.MISSING_TOKENS)), axis=-1)
  true = tf.equal(lowered, 'true') | tf.equal(lowered, 'yes')
  false = tf.equal(lowered, 'false') | tf.equal(lowered, 'no')
  values = tf.strings.to_number(tf.where(missing | true | false, '0', lowered), tf.float64)
  values = tf.where(true, tf.constant(1.0, tf.float64), values)
  return tf.where(missing, tf.constant(np.nan, tf.float64), values)


def _positions(header, names):
  """Indices of `names` in the CSV header line, and whether every one was found."""
  columns = tf.strings.strip(tf.strings.split(header, ','))
  equal = tf.equal(tf.constant(list(names))[:, None], columns[None, :])
  found = tf.reduce_all(tf.reduce_any(equal, axis=1))
  return tf.argmax(tf.cast(equal, tf.int32), axis=1, output_type=tf.int32), found


def first_row(mask):
  """1-based index of the first True in `mask`, 0 when none."""
  where = tf.cast(tf.where(mask), tf.int64)
  return tf.cond(tf.size(where) > 0, lambda: where[0, 0] + 1, lambda: tf.constant(0, tf.int64))


@dataclasses.dataclass(frozen=True)
class ShardFormat:
  """How to turn a shard's CSV rows into `(features, label)` examples, by column name."""

  features: tuple[str, ...]
  label: str
  num_classes: int
  missing: str = 'error'  # data.missing: 'error', 'drop_rows' or 'impute_mean'
  extension = 'csv'  # Of the shard files the client inputs name.

  def describe_computation(self):
    """client input -> (header, rows kept, label histogram, bad row, bad column, rows with gaps).

    The label, its classes, the feature columns and the missing-value policy are
    part of the computation (so of the plan the hospital approves): the
    coordinator cannot ask for another column's histogram. Counts between 1 and
    MIN_COUNT-1 come back as SUPPRESSED. The bad row is the 1-based number of the
    first row the policy cannot use (a missing feature under 'error', a missing
    label, a label not one of the classes), 0 when there is none, -1 when the
    label column is absent; the bad column indexes features + (label,).
    """
    names = (*self.features, self.label)
    width = len(self.features)

    @tff.tensorflow.computation(np.str_)
    def describe_shard(spec):
      path = tf.strings.split(spec, SEPARATOR)[0]
      content = tf.strings.regex_replace(tf.io.read_file(path), '\r', '')
      lines = tf.strings.split(tf.strings.strip(content), '\n')
      header, rows = lines[0], lines[1:]
      index, found = _positions(header, names)
      _, label_found = _positions(header, [self.label])
      # Split with the header, so the table is as wide as the header even without rows.
      table = tf.strings.split(lines, ',').to_tensor(default_value='')[1:]
      cells = tf.cond(
        found,
        lambda: tf.gather(table, index, axis=1),
        lambda: tf.fill([tf.size(rows), len(names)], '0'),
      )
      values = _numbers(cells)
      gaps = tf.math.is_nan(values)
      feature_gap = tf.reduce_any(gaps[:, :width], axis=1)
      label_gap = gaps[:, width]
      label = values[:, width]
      # As the simulation's `targets.ClassLabel.check`: a whole number among the classes.
      valid = ~label_gap & tf.equal(label, tf.round(label)) & (label >= 0)
      valid = valid & (label < self.num_classes)
      keep = tf.ones_like(valid)
      if self.missing == 'drop_rows':
        keep = ~(feature_gap | label_gap)
      bad = keep & ~valid
      column = tf.constant(width, tf.int64)  # The label: all a row can lack under a policy.
      if self.missing == 'error':
        bad = bad | feature_gap
        padded = tf.concat([gaps[:, :width], tf.zeros([1, width], tf.bool)], 0)
        first = first_row(bad)
        row_gaps = padded[tf.where(first > 0, first - 1, tf.cast(tf.size(label), tf.int64))]
        column = tf.where(
          tf.reduce_any(row_gaps),
          tf.argmax(tf.cast(row_gaps, tf.int32), output_type=tf.int64),
          column,
        )
      bad_row = tf.where(label_found, first_row(bad), tf.constant(-1, tf.int64))
      labels = tf.cast(tf.boolean_mask(label, keep & valid), tf.int32)
      histogram = tf.math.bincount(
        labels, minlength=self.num_classes, maxlength=self.num_classes, dtype=tf.int64
      )
      small = (histogram > 0) & (histogram < MIN_COUNT)
      histogram = tf.where(small, tf.constant(SUPPRESSED, tf.int64), histogram)
      kept = tf.reduce_sum(tf.cast(keep, tf.int64))
      with_gaps = tf.reduce_sum(tf.cast(feature_gap | label_gap, tf.int64))
      return header, kept, histogram, bad_row, column, with_gaps

    return describe_shard

  def _rows(self, path):
    """The shard's (features..., label) rows as float64, the missing-value policy applied."""
    lines = tf.data.TextLineDataset(path).map(lambda line: tf.strings.regex_replace(line, '\r', ''))
    header = lines.take(1).get_single_element()
    index, _ = _positions(header, (*self.features, self.label))
    rows = lines.skip(1).filter(lambda line: tf.strings.length(tf.strings.strip(line)) > 0)
    values = rows.map(lambda line: _numbers(tf.gather(tf.strings.split(line, ','), index)))
    width = len(self.features)
    if self.missing == 'drop_rows':
      return values.filter(lambda v: ~tf.reduce_any(tf.math.is_nan(v)))
    if self.missing == 'impute_mean':
      train_path = tf.strings.regex_replace(path, r'test\.csv$', 'train.csv')
      means = self._train_means(train_path)
      return values.map(
        lambda v: tf.concat([tf.where(tf.math.is_nan(v[:width]), means, v[:width]), v[width:]], 0)
      )
    return values

  def _train_means(self, train_path):
    """Each feature's mean over the training rows that have it (0 where none has), as NumPy's."""
    plain = dataclasses.replace(self, missing='error')
    width = len(self.features)

    def add(total, v):
      present = ~tf.math.is_nan(v[:width])
      return (
        total[0] + tf.where(present, v[:width], tf.zeros_like(v[:width])),
        total[1] + tf.cast(present, tf.float64),
      )

    zeros = tf.zeros([width], tf.float64)
    sums, counts = plain._rows(train_path).reduce((zeros, zeros), add)
    return tf.math.divide_no_nan(sums, counts)

  def _examples(self, spec, scaled: bool = True, flip=None):
    parts = tf.strings.split(spec, SEPARATOR)
    width = len(self.features)
    binary = self.num_classes == 2
    if scaled:
      mean = tf.strings.to_number(tf.strings.split(parts[3], ';'), tf.float64)
      std = tf.strings.to_number(tf.strings.split(parts[4], ';'), tf.float64)

    def example(v):
      x = tf.cast(v[:width], tf.float32)
      if scaled:
        x = tf.cast((tf.cast(x, tf.float64) - mean) / std, tf.float32)
      y = tf.cast(v[width], tf.float32)
      if flip is not None:  # The label-flip attack: class c becomes (c + 1) mod classes.
        flipped = tf.math.floormod(y + 1.0, float(self.num_classes))
        y = tf.where(tf.not_equal(flip, 0), flipped, y)
      return x, tf.reshape(y, [1]) if binary else tf.cast(y, tf.int32)

    seed = tf.strings.to_number(parts[1], tf.int64)
    rows = tf.strings.to_number(parts[2], tf.int64)
    return self._rows(parts[0]).map(example), seed, rows

  def train_computation(self, plan: client_data.LocalTraining, flip: bool = False):
    """client input (or `FLIP_INPUT`) -> the shard's training dataset for one round."""

    def dataset(spec, flag):
      examples, seed, rows = self._examples(spec, flip=flag)
      return client_data.training_dataset(examples, rows, plan, seed)

    if flip:

      @tff.tensorflow.computation(FLIP_INPUT)
      def load_attacked_train(spec):
        return dataset(spec.data, spec.flip)

      return load_attacked_train

    @tff.tensorflow.computation(np.str_)
    def load_train(spec):
      return dataset(spec, None)

    return load_train

  def paired_train_computation(self, plan: client_data.LocalTraining, params_type, params_fn):
    """<params, data=client input> -> (params dataset, training dataset), at the hospital.

    For processes whose clients take parameters (noise multiplier or attack code,
    and a seed) next to their data: `params_fn(*params)` builds their dataset.
    """

    @tff.tensorflow.computation(tff.StructType([('params', params_type), ('data', np.str_)]))
    def load_pair(spec):
      examples, seed, rows = self._examples(spec.data)
      return params_fn(*spec.params), client_data.training_dataset(examples, rows, plan, seed)

    return load_pair

  def test_computation(self, batch_size: int):
    """client input -> the shard's test dataset, batched for evaluation."""

    @tff.tensorflow.computation(np.str_)
    def load_test(spec):
      examples, _, _ = self._examples(spec)
      return examples.batch(batch_size)

    return load_test

  def features_computation(self):
    """client input -> the shard's raw (unstandardized) feature rows, for federated moments."""

    @tff.tensorflow.computation(np.str_)
    def load_features(spec):
      examples, _, _ = self._examples(spec, scaled=False)
      return examples.map(lambda x, y: x)

    return load_features
