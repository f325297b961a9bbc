"""Hospitals as TFF clients: `tff.simulation.datasets.ClientData` over validated shards.

Client id = hospital id. Elements are `(features, label)` pairs; binary labels
are float32 of shape [1] (to match a sigmoid output), multiclass labels int32
scalars. Training datasets are rebuilt each round with a shuffle seed derived
from (run seed, round, hospital), so a resumed run sees exactly the batches an
uninterrupted run would have seen.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_med.clients import shuffle
from tff_med.data.shards import FederatedShards
from tff_med.data.targets import SURVIVAL_OUTPUTS
from tff_med.errors import ConfigError


def labels(y: np.ndarray, num_classes: int) -> np.ndarray:
  """Labels as the model's loss takes them.

  float32 [rows, 1] if binary, int32 [rows] for more classes, and float32
  [rows, 2] (time, event) for a survival study (`num_classes` 1).
  """
  if num_classes == SURVIVAL_OUTPUTS:
    return y.astype(np.float32)
  return y.astype(np.float32)[:, None] if num_classes == 2 else y.astype(np.int32)


def client_data(data: FederatedShards, split: str) -> tff.simulation.datasets.ClientData:
  """Returns the `split` ('train' or 'test') shards as unbatched client datasets."""
  arrays = {
    s.hospital: (getattr(s, f'x_{split}'), labels(getattr(s, f'y_{split}'), data.num_classes))
    for s in data.shards
  }

  def dataset_fn(hospital: str) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(arrays[hospital])

  return tff.simulation.datasets.ClientData.from_clients_and_tf_fn(data.hospitals, dataset_fn)


@dataclasses.dataclass(frozen=True)
class LocalTraining:
  """How each hospital iterates over its data in one round.

  Exactly one of `local_steps` (batches per round, FLamby's protocol) and
  `local_epochs` (passes over the shard) is positive.
  """

  batch_size: int
  local_steps: int = 0
  local_epochs: int = 0

  def __post_init__(self):
    if self.batch_size < 1:
      raise ConfigError(f'data.batch_size must be >= 1, got {self.batch_size}')
    if (self.local_steps > 0) == (self.local_epochs > 0):
      raise ConfigError(
        'set exactly one of data.local_steps and data.local_epochs to a positive number, '
        f'got local_steps={self.local_steps}, local_epochs={self.local_epochs}'
      )


def shuffle_seed(seed: int, round_num: int, client_index):
  """A distinct, reproducible shuffle seed per run, round and hospital (an int, or an
  array of them for an array of `client_index`)."""
  return (seed * 1_000_003 + round_num * 10_007 + client_index) % (2**31 - 1)


def _lean_options() -> tf.data.Options:
  # tf.data's default rewrites (an injected prefetch thread, op fusions) cost a
  # heart round about a fifth with tf.data's shuffle, an eighth with today's pipeline
  # (52 vs 60 ms, 2026-12-05), and leave the batches unchanged
  # (benchmarks/dataset_options.py; benchmarks/README.md).
  options = tf.data.Options()
  options.experimental_optimization.apply_default_optimizations = False
  return options


def training_dataset(dataset: tf.data.Dataset, size, plan: LocalTraining, seed) -> tf.data.Dataset:
  """Shuffles and batches one hospital's training data for one round.

  Each pass over the shard visits its rows in `shuffle.epoch_orders`' order for
  `seed`; with `local_steps`, batches run on across passes. `size` and `seed`
  may be Python ints (simulation) or scalar tensors (a remote worker building
  the dataset from a shard name); both give the same batches.
  """
  if tf.executing_eagerly():  # One traced graph per plan, not a dozen eager ops per hospital.
    return _traced(plan)(dataset, tf.constant(size, tf.int64), tf.constant(seed, tf.int64))
  return _batches(dataset, size, plan, seed)


@functools.cache
def _traced(plan: LocalTraining):
  return tf.function(lambda dataset, size, seed: _batches(dataset, size, plan, seed))


def _batches(dataset: tf.data.Dataset, size, plan: LocalTraining, seed) -> tf.data.Dataset:
  shard = _whole(dataset, size)
  rows = tf.shape(tf.nest.flatten(shard)[0], out_type=tf.int64)[0]
  if plan.local_steps:  # Batches run on across passes; none from an empty shard.
    count = tf.where(rows > 0, tf.constant(plan.local_steps * plan.batch_size, tf.int64), 0)
    passes = -(-count // tf.maximum(rows, 1))  # Enough to reach `count` rows.
    order = tf.reshape(shuffle.epoch_orders(rows, seed, passes), [-1])[:count]
    batches = tf.data.Dataset.from_tensor_slices(_take(shard, order)).batch(plan.batch_size)
  else:  # Each pass batched on its own (local_epochs is a Python int).
    orders = shuffle.epoch_orders(rows, seed, plan.local_epochs)
    batches = tf.data.Dataset.from_tensor_slices(_take(shard, orders[0])).batch(plan.batch_size)
    for epoch in range(1, plan.local_epochs):
      batches = batches.concatenate(
        tf.data.Dataset.from_tensor_slices(_take(shard, orders[epoch])).batch(plan.batch_size)
      )
  return batches.with_options(_lean_options())


def _whole(dataset: tf.data.Dataset, size):
  # The shard's rows as tensors, [0, ...] ones if it is empty (no user function to trace:
  # a flat_map here cost about 24 ms per hospital to build and 4 ms per hospital a round
  # in the worker: benchmarks.round_breakdown).
  empty = tf.nest.map_structure(
    lambda spec: tf.zeros([0, *spec.shape], spec.dtype), dataset.element_spec
  )
  whole = dataset.batch(tf.maximum(tf.cast(size, tf.int64), 1)).take(1)
  return whole.concatenate(tf.data.Dataset.from_tensors(empty)).take(1).get_single_element()


def _take(shard, index: tf.Tensor):
  return tf.nest.map_structure(lambda column: tf.gather(column, index), shard)


def round_indices(sizes: list[int], seeds: list[int], plan: LocalTraining) -> np.ndarray:
  """[hospital, step, example]: the rows `training_dataset` batches for each hospital,
  drawn for all of them at once (the fused engine's round; `local_steps` only)."""
  count = plan.local_steps * plan.batch_size
  return shuffle.round_rows(sizes, seeds, count).reshape(len(sizes), plan.local_steps, -1)


def round_datasets(
  train: tff.simulation.datasets.ClientData,
  sizes: dict[str, int],
  hospitals: list[str],
  plan: LocalTraining,
  *,
  seed: int,
  round_num: int,
) -> list[tf.data.Dataset]:
  """The datasets `hospitals` train on in round `round_num`."""
  return [
    training_dataset(
      train.create_tf_dataset_for_client(h),
      sizes[h],
      plan,
      shuffle_seed(seed, round_num, train.client_ids.index(h)),
    )
    for h in hospitals
  ]
