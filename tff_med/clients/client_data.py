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


def shuffle_seed(seed: int, round_num: int, client_index: int) -> int:
  """A distinct, reproducible shuffle seed per run, round and hospital."""
  return (seed * 1_000_003 + round_num * 10_007 + client_index) % (2**31 - 1)


def _lean_options() -> tf.data.Options:
  # tf.data's default rewrites (an injected prefetch thread, op fusions) cost
  # about a fifth of a heart round and leave the batches unchanged
  # (benchmarks/dataset_options.py; benchmarks/README.md).
  options = tf.data.Options()
  options.experimental_optimization.apply_default_optimizations = False
  return options


def _batched(dataset: tf.data.Dataset, size, plan: LocalTraining, seed) -> tf.data.Dataset:
  buffer = tf.maximum(tf.cast(size, tf.int64), 1)
  shuffled = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
  if plan.local_steps:
    return shuffled.repeat().batch(plan.batch_size).take(plan.local_steps)
  return shuffled.batch(plan.batch_size).repeat(plan.local_epochs)


def training_dataset(dataset: tf.data.Dataset, size, plan: LocalTraining, seed) -> tf.data.Dataset:
  """Shuffles and batches one hospital's training data for one round.

  `size` and `seed` may be Python ints (simulation) or scalar tensors (a remote
  worker building the dataset from a shard name); both give the same batches.
  """
  return _batched(dataset, size, plan, seed).with_options(_lean_options())


@functools.cache
def _indices_function(plan: LocalTraining):
  # Traced once per plan: building the pipelines in Python cost 4x running them.
  @tf.function
  def indices(sizes, seeds):
    pairs = tf.data.Dataset.from_tensor_slices((sizes, seeds))
    rows = pairs.flat_map(lambda n, s: _batched(tf.data.Dataset.range(n), n, plan, s))
    steps = tf.size(sizes, tf.int64) * plan.local_steps
    return rows.batch(steps).with_options(_lean_options()).get_single_element()

  return indices


def round_indices(sizes: list[int], seeds: list[int], plan: LocalTraining) -> np.ndarray:
  """[hospital, step, example]: the rows `training_dataset` batches for each hospital, from
  one `tf.data` pipeline over all of them (the fused engine's round; `local_steps` only).

  A shuffle draws the same order for a shard's row indices as for its rows.
  """
  flat = _indices_function(plan)(tf.constant(sizes, tf.int64), tf.constant(seeds, tf.int64))
  return flat.numpy().reshape(len(sizes), plan.local_steps, plan.batch_size)


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
