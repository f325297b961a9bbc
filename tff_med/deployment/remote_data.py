"""TF computations that read a hospital's shard where it lives, on that hospital's worker.

The coordinator sends only strings: a client input names a shard file relative
to the worker's data root, the shuffle seed, the row count and the
standardization statistics to apply ('cleveland/train.csv|seed|rows|mean;..|std;..').
Every computation depends on the config alone (columns are found by name in
the shard's header, statistics arrive as data), so the plan a hospital approves
(`deployment.plan`) can be exported before anyone has seen a shard. The worker
parses the CSV, standardizes, shuffles and batches exactly as the simulation
does with in-memory arrays (`client_data.training_dataset`), so a remote run
and a simulated one see the same batches.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_med.data import client_data

SEPARATOR = '|'
SPLITS = ('train', 'test')
# The smallest label count a hospital discloses; 1..MIN_COUNT-1 is reported as SUPPRESSED.
MIN_COUNT = 5
SUPPRESSED = -1

_NUMBER = r'-?[0-9.eE+-]+|nan|inf'
_CLIENT_INPUT = re.compile(
  rf'(?P<hospital>[A-Za-z0-9_.-]+)/(?P<split>train|test)\.csv\|[0-9]+\|[0-9]+'
  rf'\|(?:(?:{_NUMBER})(?:;(?:{_NUMBER}))*)?\|(?:(?:{_NUMBER})(?:;(?:{_NUMBER}))*)?'
)


def client_input(hospital: str, split: str, *, seed=0, rows=0, mean=(), std=()) -> str:
  """The string a hospital's worker turns into its `split` dataset (statistics: float64)."""

  def numbers(values):
    return ';'.join(repr(float(v)) for v in values)

  return SEPARATOR.join(
    [f'{hospital}/{split}.csv', str(seed), str(rows), numbers(mean), numbers(std)]
  )


def parse_client_input(text: str) -> tuple[str, str] | None:
  """(hospital, split) of a well-formed client input, or None for anything else."""
  match = _CLIENT_INPUT.fullmatch(text)
  if match is None or match['hospital'] in ('.', '..'):
    return None
  return match['hospital'], match['split']


def _lines(path):
  lines = tf.data.TextLineDataset(path).map(lambda line: tf.strings.regex_replace(line, '\r', ''))
  header = lines.take(1).get_single_element()
  rows = lines.skip(1).filter(lambda line: tf.strings.length(tf.strings.strip(line)) > 0)
  return header, rows


def _positions(header, names):
  """Indices of `names` in the CSV header (an assertion names a missing column)."""
  columns = tf.strings.strip(tf.strings.split(header, ','))
  equal = tf.equal(tf.constant(list(names))[:, None], columns[None, :])
  check = tf.debugging.assert_equal(
    tf.reduce_all(tf.reduce_any(equal, axis=1)), True, message=f'shard lacks one of {names}'
  )
  with tf.control_dependencies([check]):
    return tf.argmax(tf.cast(equal, tf.int32), axis=1, output_type=tf.int32)


# A label cell the hospital accepts: a whole number, optionally written as '1.0'.
_WHOLE_NUMBER = r'\s*[0-9]+(\.0*)?\s*'


def describe_computation(label: str, num_classes: int):
  """client input -> (header line, data rows, label histogram, first bad label row), at the hospital.

  The label and its classes are part of the computation (so of the plan the
  hospital approves): the coordinator cannot ask for another column's
  histogram. Counts between 1 and MIN_COUNT-1 come back as SUPPRESSED. The bad
  row is the 1-based number of the first row whose label is missing, not a
  whole number or outside the classes (0 when every row is fine; -1 when the
  file has no such column), so the coordinator can name the row without seeing it.
  """

  @tff.tensorflow.computation(np.str_)
  def describe_shard(spec):
    path = tf.strings.split(spec, SEPARATOR)[0]
    content = tf.strings.regex_replace(tf.io.read_file(path), '\r', '')
    lines = tf.strings.split(tf.strings.strip(content), '\n')
    header, rows = lines[0], lines[1:]
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
    valid = whole & (values < num_classes)
    labels = tf.cast(tf.boolean_mask(values, valid), tf.int32)
    histogram = tf.math.bincount(
      labels, minlength=num_classes, maxlength=num_classes, dtype=tf.int64
    )
    small = (histogram > 0) & (histogram < MIN_COUNT)
    histogram = tf.where(small, tf.constant(SUPPRESSED, tf.int64), histogram)
    invalid = tf.cast(tf.where(tf.logical_not(valid)), tf.int64)
    bad_row = tf.cond(
      tf.size(invalid) > 0, lambda: invalid[0, 0] + 1, lambda: tf.constant(0, tf.int64)
    )
    bad_row = tf.where(found, bad_row, tf.constant(-1, tf.int64))
    return header, tf.size(rows, out_type=tf.int64), histogram, bad_row

  return describe_shard


@dataclasses.dataclass(frozen=True)
class ShardFormat:
  """How to turn a shard's CSV rows into `(features, label)` examples, by column name."""

  features: tuple[str, ...]
  label: str
  num_classes: int

  def _examples(self, spec, scaled: bool = True):
    parts = tf.strings.split(spec, SEPARATOR)
    header, lines = _lines(parts[0])
    feature_idx = _positions(header, self.features)
    label_idx = _positions(header, [self.label])[0]
    binary = self.num_classes == 2
    if scaled:
      mean = tf.strings.to_number(tf.strings.split(parts[3], ';'), tf.float64)
      std = tf.strings.to_number(tf.strings.split(parts[4], ';'), tf.float64)

    def example(line):
      cells = tf.strings.split(line, ',')
      x = tf.strings.to_number(tf.gather(cells, feature_idx), tf.float32)
      if scaled:
        x = tf.cast((tf.cast(x, tf.float64) - mean) / std, tf.float32)
      y = tf.strings.to_number(cells[label_idx], tf.float32)
      return x, tf.reshape(y, [1]) if binary else tf.cast(y, tf.int32)

    seed = tf.strings.to_number(parts[1], tf.int64)
    rows = tf.strings.to_number(parts[2], tf.int64)
    return lines.map(example), seed, rows

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

    @tff.tensorflow.computation(np.str_)
    def load_features(spec):
      examples, _, _ = self._examples(spec, scaled=False)
      return examples.map(lambda x, y: x)

    return load_features
