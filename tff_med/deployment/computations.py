"""Every TFF computation a remote run sends to the hospitals, built from the config alone.

The coordinator and the plan a hospital approves (`plan.py`) build them with the
same function, so what the steward read is what the coordinator sends. Six
computations are invoked at the hospitals: the shard description, the feature
moments, and the learning and evaluation processes' `initialize` and `next`.
TFF compiles each into the three parts of its mergeable form (`up_to_merge` at
each hospital, `merge` and `after_merge` at one of them) and sends them as
`computation_pb2.Computation` protos; `worker_parts` reproduces that
compilation so the plan lists the exact fingerprints a worker will see.
"""

from __future__ import annotations

import dataclasses

import tensorflow_federated as tff
from tensorflow_federated.python.core.impl.executors import value_serialization

from tff_med import algorithms, experiment, federated_stats
from tff_med.data import heart_disease
from tff_med.deployment import remote_data, schema
from tff_med.deployment.addresses import parse_workers
from tff_med.errors import ConfigError

PARTS = ('up_to_merge', 'merge', 'after_merge')


def validate_deployment(config) -> dict[str, str]:
  """Checks what a remote run supports; returns {hospital: address}.

  Raises:
    ConfigError: Malformed or duplicate workers, incomplete TLS files, or a
      feature that runs only in simulation.
  """
  d = config.deployment
  workers = parse_workers(d.workers)
  tls = [d.tls_cert, d.tls_key, d.tls_ca]
  if any(tls) and not all(tls):
    raise ConfigError('mutual TLS needs all of deployment.tls_cert, tls_key and tls_ca')
  for name in ('ready_timeout', 'call_timeout'):
    if not d[name] > 0:
      raise ConfigError(f'deployment.{name} must be > 0 seconds, got {d[name]}')
  simulation_only = {
    'data.source=npz': config.data.source == 'npz',
    f'data.missing={config.data.missing!r} (workers validate with missing=error)': (
      config.data.missing != 'error'
    ),
    f'privacy.level={config.privacy.level!r}': config.privacy.level != 'none',
    f'attack.kind={config.attack.kind!r}': config.attack.kind != 'none',
    f'runtime.engine={config.runtime.engine!r}': config.runtime.engine != 'tff',
  }
  refused = [name for name, on in simulation_only.items() if on]
  if refused:
    raise ConfigError(f'remote deployments do not support {", ".join(refused)} yet')
  return workers


def plan_features(config) -> tuple[str, ...]:
  """The feature columns a remote run reads, known before any shard is seen.

  Raises:
    ConfigError: `data.features` is empty and the source's columns are not known.
  """
  if config.data.features:
    return tuple(config.data.features)
  if config.data.source == 'heart_disease':
    return heart_disease.FEATURES
  raise ConfigError(
    'data.features is empty: a deployment plan names the columns it reads; set data.features '
    "to the consortium's feature columns"
  )


@dataclasses.dataclass
class RunComputations:
  """The computations of one remote run, and the model they train."""

  features: tuple[str, ...]
  shard_format: remote_data.ShardFormat
  describe: tff.Computation
  moments: tff.Computation
  process: tff.learning.templates.LearningProcess
  evaluation: tff.learning.templates.LearningProcess
  keras_model: object  # () -> a fresh Keras model

  def invoked(self) -> dict[str, tff.Computation]:
    """{name: computation} for every computation the hospitals run."""
    return {
      'describe shard': self.describe,
      'feature moments': self.moments,
      'training: initialize': self.process.initialize,
      'training: round': self.process.next,
      'evaluation: initialize': self.evaluation.initialize,
      'evaluation: round': self.evaluation.next,
    }


def build(config, features: tuple[str, ...], num_hospitals: int) -> RunComputations:
  """Builds the run's computations for shards with these feature columns."""
  d = config.data
  shard_format = remote_data.ShardFormat(tuple(features), d.label, d.num_classes)
  model = config.model.to_dict()

  def model_fn():
    return schema.model_fn(model, len(features), d.num_classes, config.seed)()

  process = tff.simulation.compose_dataset_computation_with_learning_process(
    shard_format.train_computation(experiment.local_training(d)),
    algorithms.build_learning_process(model_fn, config.algorithm, num_hospitals),
  )
  evaluation = tff.simulation.compose_dataset_computation_with_learning_process(
    shard_format.test_computation(d.eval_batch_size),
    tff.learning.algorithms.build_fed_eval(
      model_fn, loop_implementation=tff.learning.LoopImplementation.DATASET_ITERATOR
    ),
  )
  moments = tff.simulation.compose_dataset_computation_with_computation(
    shard_format.features_computation(),
    federated_stats.dataset_moments_computation(len(features)),
  )
  return RunComputations(
    tuple(features),
    shard_format,
    remote_data.describe_computation(d.label, d.num_classes),
    moments,
    process,
    evaluation,
    lambda: schema.keras_model(model, len(features), d.num_classes, config.seed),
  )


def worker_parts(comp: tff.Computation):
  """Yields (part, computation proto, result type) as TFF sends `comp` to a worker."""
  form = tff.backends.native.compile_to_mergeable_comp_form(comp)
  for part in PARTS:
    native = tff.backends.native.desugar_and_transform_to_native(getattr(form, part))
    value, _ = value_serialization.serialize_value(native, native.type_signature)
    yield part, value.computation, native.type_signature.result
