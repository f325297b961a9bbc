"""What the coordinator learns from the hospitals instead of their data: the shard schema.

Each hospital's worker reports, per split, the CSV header, the row count, a
histogram of the plan's label (small counts suppressed) and the first row whose
label is not one of the plan's classes (`remote_data.describe_computation`: the
label is built into the computation the hospital approved, and checked there). The coordinator refuses to start if the
hospitals' columns disagree, if a label is bad, or if a worker lacks a
hospital's shard, naming the hospital, the file, the column and the row.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tff_med import models
from tff_med import task as task_lib
from tff_med.deployment import remote_data
from tff_med.deployment.federation import DeploymentError, RemoteFederation
from tff_med.data import shards
from tff_med.errors import ConfigError, ShardError

SPLITS = ('train', 'test')


@dataclasses.dataclass
class RemoteSchema:
  """The federation's agreed columns, and per-hospital sizes and label histograms."""

  columns: tuple[str, ...]
  feature_names: tuple[str, ...]
  label: str
  num_classes: int
  rows: dict[str, dict[str, int]]  # hospital -> split -> rows
  label_counts: dict[str, dict[str, np.ndarray]]  # hospital -> split -> counts per class

  @property
  def hospitals(self) -> list[str]:
    return list(self.rows)


def _describe(federation: RemoteFederation, hospital: str, split: str, describe):
  path = f'{hospital}/{split}.csv'
  try:
    with federation.route([hospital]):
      header, rows, histogram, bad_row = describe(remote_data.client_input(hospital, split))
  except DeploymentError:
    raise
  except Exception as e:  # The worker's error arrives as a gRPC error with its message.
    detail = str(e)
    if 'No such file' in detail or 'NOT_FOUND' in detail:
      raise DeploymentError(
        f'hospital {hospital}: its worker at {federation.workers[hospital]} has no shard '
        f'{path} under its --data_root'
      ) from e
    raise DeploymentError(
      f'hospital {hospital}: reading {path} on its worker failed: {detail[:500]}'
    ) from e
  return header.decode(), int(rows), np.asarray(histogram), int(bad_row)


def fetch_schema(federation: RemoteFederation, data_config, describe) -> RemoteSchema:
  """Asks every hospital's worker for its shards' schema and checks that they agree.

  `describe` is `remote_data.describe_computation` for the config's label.

  Raises:
    DeploymentError: A worker lacks a hospital's shard or cannot read it.
    ShardError: A hospital's columns differ from the others', it lacks the
      label column, or a label is not one of 0..num_classes-1 (with its row).
    ConfigError: `data.features` names a column the shards lack, or the label.
  """
  label, num_classes = data_config.label, data_config.num_classes
  described, bad_rows, rows, counts = [], [], {}, {}
  for hospital in federation.hospitals:
    rows[hospital], counts[hospital] = {}, {}
    for split in SPLITS:
      header, n, histogram, bad_row = _describe(federation, hospital, split, describe)
      path = f'{hospital}/{split}.csv'
      described.append((hospital, path, tuple(c.strip() for c in header.split(','))))
      bad_rows.append((hospital, path, bad_row))
      rows[hospital][split], counts[hospital][split] = n, histogram
  shards.check_same_columns(described)
  for (hospital, path, bad_row), (_, _, columns) in zip(bad_rows, described, strict=True):
    if bad_row < 0:
      raise ShardError(
        f'label column {label!r} not found; columns are {list(columns)}',
        hospital=hospital,
        file=path,
      )
    if bad_row > 0:
      raise ShardError(
        f'label is missing or not one of the classes {list(range(num_classes))} '
        f'(data.num_classes={num_classes})',
        hospital=hospital,
        file=path,
        column=label,
        row=bad_row,
      )
  columns = described[0][2]
  features = tuple(data_config.features) or tuple(c for c in columns if c != label)
  if label in data_config.features:
    raise ConfigError(
      f'data.features lists the label column {label!r}: the model would be trained on its answer'
    )
  missing = [f for f in features if f not in columns]
  if missing:
    raise ConfigError(f'data.features {missing} are not columns of the shards: {list(columns)}')
  return RemoteSchema(columns, features, label, num_classes, rows, counts)


@dataclasses.dataclass
class RemoteTask:
  """The model side of a remote run: no data, only its schema and standardization."""

  schema: RemoteSchema
  standardizer: object
  model_config: dict
  seed: int

  def keras_model(self) -> tf.keras.Model:
    """A fresh, seeded, uncompiled Keras model."""
    return keras_model(
      self.model_config, len(self.schema.feature_names), self.schema.num_classes, self.seed
    )


def keras_model(model_config: dict, num_features: int, num_classes: int, seed: int):
  """A fresh, seeded, uncompiled Keras model for rows of `num_features` features."""
  config = dict(model_config)
  return models.build_model(config.pop('name'), (num_features,), num_classes, seed=seed, **config)


def model_fn(model_config: dict, num_features: int, num_classes: int, seed: int):
  """A no-arg function returning a fresh `tff.learning.models.VariableModel`."""
  label_spec = (
    tf.TensorSpec([None, 1], tf.float32) if num_classes == 2 else tf.TensorSpec([None], tf.int32)
  )
  spec = (tf.TensorSpec([None, num_features], tf.float32), label_spec)
  return task_lib.variable_model_fn(
    lambda: keras_model(model_config, num_features, num_classes, seed), spec, num_classes
  )
