"""Hospital shards kept where the local TFF worker reads them: rounds send names, not rows.

Handing TFF a `tf.data` pipeline built in Python makes it serialize the
pipeline, rows included, into a GraphDef and ship it to the worker, for every
hospital in every round: on the compute-bound benchmark job that was about
60 ms of a 300 ms round (`benchmarks/round_breakdown.py`). Instead each
hospital's (already standardized) arrays are written once, when a run starts,
to a private temporary directory (mode 0700, removed when the run ends), and
the learning process is composed, with TFF's
`compose_dataset_computation_with_learning_process` as the deployment path does
with CSV files, with a computation that reads them inside the worker and
shuffles and batches exactly as `client_data.training_dataset` does. The batches
are the same, so the weights are the same (tests/test_resident.py).

Only the local runtime can use this: its worker runs on this machine and sees
the directory. If the process is killed (SIGKILL) before it cleans up, the
directory stays behind under the system's temporary directory; its name starts
with `tff_med_shards_`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_med import stale_files
from tff_med.clients import client_data
from tff_med.data.shards import SPLITS, FederatedShards

DIRECTORY_PREFIX = 'tff_med_shards_'
# A hospital's training input in a round: where its arrays are and the shuffle seed.
TRAIN_INPUT = tff.StructType([('path', np.str_), ('seed', np.int64)])


def write_tensor(path: str, array: np.ndarray) -> None:
  """Writes `array` as a serialized tensor a TFF worker reads with `tf.io.parse_tensor`."""
  with open(path, 'wb') as f:
    f.write(tf.io.serialize_tensor(array).numpy())


def _read_tensor(path, dtype, shape):
  tensor = tf.io.parse_tensor(tf.io.read_file(path), dtype)
  tensor.set_shape(shape)
  return tensor


class ResidentShards:
  """Every hospital's train and test arrays, written under `directory` for the worker.

  Args:
    data: The run's shards, standardized as training will see them.
    directory: An existing directory the local TFF worker can read.
  """

  def __init__(self, data: FederatedShards, directory: str):
    self.hospitals = data.hospitals
    self.test_labels = {s.hospital: s.y_test for s in data.shards}
    first = data.shards[0]
    self._x_spec = (tf.as_dtype(first.x_train.dtype), [None, *first.x_train.shape[1:]])
    labels = client_data.labels(first.y_train, data.num_classes)
    self._y_spec = (tf.as_dtype(labels.dtype), [None, *labels.shape[1:]])
    # What the loaders' types depend on: shards of one layout share computations.
    self.layout = repr((self._x_spec, self._y_spec))
    self._paths = {}
    for index, shard in enumerate(data.shards):
      # By position, not name: hospital ids come from directory names.
      base = os.path.join(directory, str(index))
      for split in SPLITS:
        write_tensor(f'{base}_{split}.x', getattr(shard, f'x_{split}'))
        write_tensor(
          f'{base}_{split}.y', client_data.labels(getattr(shard, f'y_{split}'), data.num_classes)
        )
      self._paths[shard.hospital] = base

  def _examples(self, base, split: str) -> tf.data.Dataset:
    x = _read_tensor(base + f'_{split}.x', *self._x_spec)
    y = _read_tensor(base + f'_{split}.y', *self._y_spec)
    return tf.data.Dataset.from_tensor_slices((x, y))

  def _train_dataset(self, spec, plan):
    examples = self._examples(spec.path, 'train')
    return client_data.training_dataset(examples, examples.cardinality(), plan, spec.seed)

  def train_computation(self, plan: client_data.LocalTraining) -> tff.Computation:
    """`TRAIN_INPUT` -> that hospital's training dataset for one round, built in the worker."""

    @tff.tensorflow.computation(TRAIN_INPUT)
    def load_train(spec):
      return self._train_dataset(spec, plan)

    return load_train

  def paired_train_computation(
    self, plan: client_data.LocalTraining, params_type, params_dataset_fn
  ) -> tff.Computation:
    """<params, data=`TRAIN_INPUT`> -> (params dataset, training dataset), built in the worker.

    For processes whose clients take their parameters (a noise multiplier or an
    attack code, and a seed) as a one-element dataset next to their data:
    `params_dataset_fn(*params)` builds it (`dp_sgd.params_dataset`,
    `attacks.attack_dataset`) from a value of `params_type`.
    """

    @tff.tensorflow.computation(tff.StructType([('params', params_type), ('data', TRAIN_INPUT)]))
    def load_pair(spec):
      return params_dataset_fn(*spec.params), self._train_dataset(spec.data, plan)

    return load_pair

  def test_computation(self, batch_size: int) -> tff.Computation:
    """A hospital's path -> its test dataset in batches of `batch_size`, built in the worker."""

    @tff.tensorflow.computation(np.str_)
    def load_test(path):
      return self._examples(path, 'test').batch(batch_size)

    return load_test

  def train_inputs(self, hospitals: list[str], *, seed: int, round_num: int) -> list:
    """The `TRAIN_INPUT`s of `hospitals` in round `round_num` (seeds as `client_data`'s)."""
    return [
      (self._paths[h], client_data.shuffle_seed(seed, round_num, self.hospitals.index(h)))
      for h in hospitals
    ]

  def test_inputs(self) -> dict[str, str]:
    """{hospital: the input `test_computation` reads its test shard from}."""
    return dict(self._paths)


@contextlib.contextmanager
def resident_shards(data: FederatedShards):
  """Writes `data` to a fresh private temporary directory; removes it on exit.

  Usage:
    with resident_shards(task.data) as shards:
      process = tff.simulation.compose_dataset_computation_with_learning_process(
        shards.train_computation(plan), learning_process)
  """
  stale_files.sweep(DIRECTORY_PREFIX)  # Left by runs that were killed.
  directory = tempfile.mkdtemp(prefix=stale_files.owned_name(DIRECTORY_PREFIX))  # mode 0700
  try:
    yield ResidentShards(data, directory)
  finally:
    shutil.rmtree(directory, ignore_errors=True)
