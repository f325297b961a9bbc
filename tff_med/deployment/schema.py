"""What the coordinator learns from the hospitals instead of their data: the shard schema.

Each hospital's worker reports, per split, the CSV header, the rows the
missing-value policy keeps, a histogram of the plan's label (small counts
suppressed), the first row the policy cannot use and the rows with gaps
(`shard_format`: label, features and policy are built into the computation the
hospital approved, and checked there). The coordinator refuses to start if the
hospitals' columns disagree, if a value is bad, or if a worker lacks a
hospital's shard, naming the hospital, the file, the column and the row.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from absl import logging

from tff_med.data import shards
from tff_med.deployment import remote_data
from tff_med.deployment.federation import DeploymentError, RemoteFederation
from tff_med.errors import ConfigError, ShardError
from tff_med.learning import models
from tff_med.learning import task as task_lib

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


def _describe(federation: RemoteFederation, hospital: str, split: str, describe, extension):
  path = f'{hospital}/{split}.{extension}'
  try:
    with federation.route([hospital]):
      header, *counts = describe(remote_data.client_input(hospital, split, extension=extension))
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
  rows, histogram, bad_row, bad_column, with_gaps = counts
  return (
    header.decode(),
    int(rows),
    np.asarray(histogram),
    int(bad_row),
    int(bad_column),
    int(with_gaps),
  )


def _features(columns, expected) -> tuple[str, ...]:
  """The plan's feature columns, checked against the shards' header."""
  missing = [f for f in expected if f not in columns]
  if missing:
    raise ConfigError(f'data.features {missing} are not columns of the shards: {list(columns)}')
  return tuple(expected)


def _check_image_shapes(described, image_shape) -> None:
  expected = tuple(str(d) for d in image_shape)
  for hospital, path, shape in described:
    if shape != expected:
      raise ShardError(
        f'images are {"x".join(shape)}, not data.image_shape {"x".join(expected)}',
        hospital=hospital,
        file=path,
      )


def _bad_row_error(data_config, names, hospital, path, bad_row, bad_column, columns):
  label, num_classes = data_config.label, data_config.num_classes
  if bad_row < 0:
    return ShardError(
      f'label column {label!r} not found; columns are {list(columns)}', hospital=hospital, file=path
    )
  if names[bad_column] != label:
    what = "value is missing (set data.missing='drop_rows' or 'impute_mean')"
  elif data_config.missing == 'impute_mean':
    what = 'label is missing (a missing target cannot be imputed) or not one of the classes'
  else:
    what = 'label is missing or not one of the classes'
  if names[bad_column] == label:
    what += f' {list(range(num_classes))} (data.num_classes={num_classes})'
  return ShardError(what, hospital=hospital, file=path, column=names[bad_column], row=bad_row)


def fetch_schema(
  federation: RemoteFederation, data_config, describe, features, image_shape=()
) -> RemoteSchema:
  """Asks every hospital's worker for its shards' schema and checks that they agree.

  `describe` is the run's `shard_format.ShardFormat.describe_computation()`,
  built for `features` (the plan's), the label, its classes and the
  missing-value policy; with `image_shape`, `npz_format.NpzFormat`'s, whose
  header is each shard's image shape. A policy that drops or imputes rows is logged per file
  with the counts the hospital reports, as the simulation logs them.

  Raises:
    DeploymentError: A worker lacks a hospital's shard or cannot read it.
    ShardError: A hospital's columns differ from the others', it lacks the
      label column, a value the policy cannot use is missing, or a label is not
      one of 0..num_classes-1 (with its row).
    ConfigError: `data.features` names a column the shards lack, or the label.
  """
  described, bad_rows, rows, counts = [], [], {}, {}
  for hospital in federation.hospitals:
    rows[hospital], counts[hospital] = {}, {}
    for split in SPLITS:
      extension = 'npz' if image_shape else 'csv'
      header, n, histogram, bad_row, bad_column, with_gaps = _describe(
        federation, hospital, split, describe, extension
      )
      path = f'{hospital}/{split}.{extension}'
      described.append((hospital, path, tuple(c.strip() for c in header.split(','))))
      bad_rows.append((hospital, path, bad_row, bad_column))
      rows[hospital][split], counts[hospital][split] = n, histogram
      _log_policy(data_config.missing, hospital, path, n, with_gaps)
  if image_shape:
    _check_image_shapes(described, image_shape)
    columns = tuple(features)
  else:
    shards.check_same_columns(described)
    columns = described[0][2]
    features = _features(columns, features)
  names = (*features, data_config.label)
  for (hospital, path, bad_row, bad_column), (_, _, cols) in zip(bad_rows, described, strict=True):
    if bad_row:
      raise _bad_row_error(data_config, names, hospital, path, bad_row, bad_column, cols)
  return RemoteSchema(columns, features, data_config.label, data_config.num_classes, rows, counts)


def _log_policy(missing: str, hospital: str, path: str, kept: int, with_gaps: int) -> None:
  if not with_gaps or missing == 'error':
    return
  if missing == 'drop_rows':
    logging.warning(
      'drop_rows: dropped %d of %d rows of %s with missing values (at %s)',
      with_gaps,
      kept + with_gaps,
      path,
      hospital,
    )
  else:
    logging.warning('impute_mean: filled missing values in %d rows of %s', with_gaps, path)


@dataclasses.dataclass
class RemoteTask:
  """The model side of a remote run: no data, only its schema and standardization."""

  schema: RemoteSchema
  standardizer: object
  model_config: dict
  seed: int
  input_shape: tuple[int, ...]

  def keras_model(self) -> tf.keras.Model:
    """A fresh, seeded, uncompiled Keras model."""
    return keras_model(self.model_config, self.input_shape, self.schema.num_classes, self.seed)


def keras_model(model_config: dict, input_shape: tuple[int, ...], num_classes: int, seed: int):
  """A fresh, seeded, uncompiled Keras model for examples of `input_shape`."""
  config = dict(model_config)
  return models.build_model(
    config.pop('name'), tuple(input_shape), num_classes, seed=seed, **config
  )


def model_fn(model_config: dict, input_shape: tuple[int, ...], num_classes: int, seed: int):
  """A no-arg function returning a fresh `tff.learning.models.VariableModel`."""
  label_spec = (
    tf.TensorSpec([None, 1], tf.float32) if num_classes == 2 else tf.TensorSpec([None], tf.int32)
  )
  spec = (tf.TensorSpec([None, *input_shape], tf.float32), label_spec)
  return task_lib.variable_model_fn(
    lambda: keras_model(model_config, input_shape, num_classes, seed), spec, num_classes
  )
