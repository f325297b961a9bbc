"""A task bundles validated shards, their scaling and a model, and checks they fit.

Modelled on TFF's `tff.simulation.baselines.BaselineTask`: the Keras model is
built once up front and its input shape checked against the data. Builders
come in pairs: `create_task` takes data as arguments (tests, notebooks);
`load_task` reads it as the config says.
"""

from __future__ import annotations

import dataclasses
import json

import tensorflow as tf
import tensorflow_federated as tff

from tff_med.clients import client_data
from tff_med.clients.federated_stats import federated_moments
from tff_med.data import heart_disease, npz_shards, scaling, shards, tcga_brca
from tff_med.errors import ConfigError, unknown_name_error
from tff_med.learning import logits, metrics, models

DATA_SOURCES = ('heart_disease', 'tcga_brca', 'csv', 'npz')


@dataclasses.dataclass
class Task:
  """Everything a federated run needs besides the algorithm."""

  data: shards.FederatedShards  # Standardized.
  standardizer: scaling.Standardizer
  model_config: dict
  seed: int

  @property
  def input_shape(self) -> tuple[int, ...]:
    return self.data.shards[0].x_train.shape[1:]

  def keras_model(self) -> tf.keras.Model:
    """A fresh, seeded, uncompiled Keras model."""
    config = dict(self.model_config)
    return models.build_model(
      config.pop('name'), self.input_shape, self.data.num_classes, seed=self.seed, **config
    )

  def input_spec(self):
    """The batched `(features, label)` spec every client dataset has."""
    test = client_data.client_data(self.data, 'test')
    return test.create_tf_dataset_for_client(test.client_ids[0]).batch(1).element_spec

  def architecture(self) -> str:
    """What the model's TFF types depend on (not its seed): equal strings, equal computations."""
    spec = repr(self.input_spec())
    return json.dumps([self.model_config, self.data.num_classes, spec], sort_keys=True, default=str)

  def model_fn(self):
    """A no-arg function returning a fresh `tff.learning.models.VariableModel`."""
    return variable_model_fn(self.keras_model, self.input_spec(), self.data.num_classes)


def variable_model_fn(keras_model_fn, input_spec, num_classes: int):
  """A no-arg function wrapping a fresh `keras_model_fn()` for TFF, with our loss and metrics."""
  return lambda: variable_model(keras_model_fn(), input_spec, num_classes)


def variable_model(keras_model, input_spec, num_classes: int, *, with_metrics: bool = True):
  """TFF's model of `keras_model`'s logits, with our loss (and metrics unless not asked).

  Raises:
    ConfigError: A classifier that does not end in a sigmoid or softmax (`logits`).
  """
  return tff.learning.models.from_keras_model(
    logits.logits_model(keras_model, num_classes),
    loss=metrics.loss_fn(num_classes),
    input_spec=input_spec,
    metrics=metrics.metric_builders(num_classes) if with_metrics else None,
  )


def create_task(
  raw: shards.FederatedShards, *, model_config: dict, scaling_mode: str, seed: int
) -> Task:
  """Scales `raw` (federatedly if asked) and checks the model accepts it.

  Raises:
    ConfigError: Unknown model or scaling mode, or the model rejects the data's shape.
  """
  standardizer = scaling.fit_standardizer(raw, scaling_mode, federated_moments)
  task = Task(scaling.standardize(raw, standardizer), standardizer, dict(model_config), seed)
  try:
    model = task.keras_model()
  except (ValueError, TypeError) as e:
    raise ConfigError(
      f'model {model_config["name"]!r} cannot take inputs of shape {task.input_shape}: {e}'
    ) from e
  if tuple(model.input_shape[1:]) != tuple(task.input_shape):
    raise ConfigError(f'model input shape {model.input_shape[1:]} != data shape {task.input_shape}')
  logits.logits_model(model, task.data.num_classes)  # Refuses a head it cannot train on logits.
  return task


def survival_columns(data_config) -> tuple[str, str] | None:
  """(event, time) of a survival config, None for a classification one.

  Raises:
    ConfigError: One of `data.event` and `data.time` without the other, or
      either beside a classification label.
  """
  event, time = data_config.get('event', ''), data_config.get('time', '')
  if event == '' and time == '':  # A classification config (None: a survival field not set).
    return None
  if data_config.label:
    given = 'data.time' if time else 'data.event'
    raise ConfigError(
      f'{given} is set on a classification config (data.label={data_config.label!r}); a '
      'survival config sets data.event and data.time and no label (configs/survival_shards.py)'
    )
  if not event or not time:
    raise ConfigError(
      'a survival config needs both data.event and data.time; '
      f'data.{"time" if event else "event"} is not set'
    )
  return event, time


def load_shards(data_config) -> shards.FederatedShards:
  """Reads the shards named by a config's `data` block (writes an embedded data set if absent)."""
  source = data_config.source
  if source not in DATA_SOURCES:
    raise unknown_name_error('data source', source, DATA_SOURCES)
  survival = survival_columns(data_config)
  required = ('root',) if survival else ('root', 'label', 'num_classes')
  for field in required:
    if data_config[field] is None:
      raise ConfigError(f'set data.{field} (e.g. --config.data.{field}=...)')
  if source == 'npz':
    return npz_shards.load_npz_shards(data_config.root, num_classes=data_config.num_classes)
  if source == 'heart_disease':
    heart_disease.write_shards(data_config.root)
  if source == 'tcga_brca':
    tcga_brca.write_shards(data_config.root)
  target = (
    {'event': survival[0], 'time': survival[1]}
    if survival
    else {'label': data_config.label, 'num_classes': data_config.num_classes}
  )
  return shards.load_csv_shards(
    data_config.root,
    features=data_config.features or None,
    missing=data_config.missing,
    **target,
  )


def load_task(config) -> Task:
  """Builds the task of an experiment config (`data`, `model`, `seed` blocks)."""
  return create_task(
    load_shards(config.data),
    model_config=config.model.to_dict(),
    scaling_mode=config.data.scaling,
    seed=config.seed,
  )
