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
import json

import numpy as np
import tensorflow_federated as tff
from tensorflow_federated.python.core.impl.executors import value_serialization

from tff_med.clients import compose, federated_stats
from tff_med.data import heart_disease, shards
from tff_med.deployment import compiled, schema
from tff_med.deployment.addresses import parse_workers
from tff_med.deployment.npz_format import NpzFormat
from tff_med.deployment.shard_format import ShardFormat
from tff_med.errors import ConfigError, unknown_name_error
from tff_med.learning import attacks
from tff_med.learning import process as process_lib
from tff_med.learning import task as task_lib
from tff_med.learning.build_cache import BuildCache
from tff_med.learning.privacy import budget, processes
from tff_med.learning.secure import client_work as secure_client_work
from tff_med.run import settings

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
  for name in ('ready_timeout', 'call_timeout', 'probe_timeout'):
    if not d[name] > 0:
      raise ConfigError(f'deployment.{name} must be > 0 seconds, got {d[name]}')
  if config.data.missing not in shards.MISSING_POLICIES:
    raise unknown_name_error('data.missing policy', config.data.missing, shards.MISSING_POLICIES)
  simulation_only = {
    "a survival study (data.event, data.time: the union's C-index compares patients across "
    'hospitals)': bool(task_lib.survival_columns(config.data)),
    "runtime.engine='fused' (the fused engine runs in this process)": (
      config.runtime.engine == 'fused'
    ),
    "privacy.level='hospital' (its noise is added to the sum, not to any update a hospital "
    "sends; use privacy.level='patient', applied in each hospital's worker)": (
      config.privacy.level == 'hospital'
    ),
    "attack.kind='label_flip' with privacy.level='patient'": (
      config.attack.kind == 'label_flip' and config.privacy.level == 'patient'
    ),
  }
  refused = [name for name, on in simulation_only.items() if on]
  if refused:
    raise ConfigError(f'remote deployments do not support {", ".join(refused)} yet')
  return workers


def image_shape(config) -> tuple[int, ...]:
  """The image shape of a remote `.npz` run (`data.image_shape`), () for CSV shards.

  Raises:
    ConfigError: An `.npz` run without a (height, width, channels) image shape.
  """
  if config.data.source != 'npz':
    return ()
  shape = tuple(config.data.get('image_shape') or ())
  if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
    raise ConfigError(
      'a remote run on .npz shards needs data.image_shape=(height, width, channels) before any '
      f'shard is seen (the plan builds the model for it), got {shape or "none"}'
    )
  return shape


def plan_features(config) -> tuple[str, ...]:
  """The feature columns a remote run reads, known before any shard is seen.

  Images: one name per pixel value, as the simulation names them.

  Raises:
    ConfigError: `data.features` is empty and the source's columns are not known.
  """
  if config.data.source == 'npz':
    return tuple(f'pixel_{i}' for i in range(int(np.prod(image_shape(config)))))
  if config.data.label in config.data.features:
    raise ConfigError(
      f'data.features lists the label column {config.data.label!r}: the model would be trained '
      'on its answer'
    )
  if config.data.features:
    return tuple(config.data.features)
  if config.data.source == 'heart_disease':  # Every column but the label, as in simulation.
    columns = (*heart_disease.FEATURES, heart_disease.LABEL)  # The shards' column order.
    return tuple(c for c in columns if c != config.data.label)
  raise ConfigError(
    'data.features is empty: a deployment plan names the columns it reads; set data.features '
    "to the consortium's feature columns"
  )


@dataclasses.dataclass
class RunComputations:
  """The computations of one remote run, and the model they train.

  `params` is the `learning.process.ClientParams` the training process's
  clients take beside their data (patient-level DP, update attacks), or None;
  `flips_labels` says the training loader takes a label-flip flag beside each
  hospital's client input (the label-flip attack).
  """

  features: tuple[str, ...]
  shard_format: ShardFormat
  describe: tff.Computation
  moments: tff.Computation
  process: tff.learning.templates.LearningProcess
  evaluation: tff.learning.templates.LearningProcess
  keras_model: object  # () -> a fresh Keras model
  params: object = None
  flips_labels: bool = False
  mask_size: int = 0  # Secure aggregation: the length of each hospital's mask (else 0).

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


def privacy_structure(config, num_hospitals: int):
  """The privacy plan as far as the computations depend on it (no shard sizes needed).

  Patient-level noise multipliers depend on each hospital's row count; they
  travel as data beside the client input, so the computations (and the plan a
  hospital approves) are the same for every noise.
  """
  p = config.privacy
  if p.level == 'none':
    return None
  if p.level == 'hospital':
    return budget.hospital_plan(config, num_hospitals)
  return budget.PrivacyPlan('patient', p.delta, p.accountant, {}, {}, {}, {}, p.l2_norm_clip)


def format_of(config, features) -> ShardFormat:
  """How the hospitals' workers read their shards: CSV columns, or `.npz` images."""
  d = config.data
  if d.source == 'npz':
    return NpzFormat(tuple(features), d.label, d.num_classes, 'error', image_shape(config))
  return ShardFormat(tuple(features), d.label, d.num_classes, d.missing)


def statistics(config, features) -> int:
  """How many standardization statistics a hospital sums: one per feature, or per channel."""
  return image_shape(config)[-1] if config.data.source == 'npz' else len(features)


_BUILT = BuildCache(size=2)  # A plan's computations, checked and then run by one coordinator.


def build(config, features: tuple[str, ...], hospitals: list[str], privacy_plan=None):
  """The run's `RunComputations` for shards with these feature columns.

  The computations are traced with `privacy_structure` (what a plan is exported
  with; DP-SGD's noise travels as data) and kept for the same config, features
  and hospitals: a run checked against its plan traces them once, not twice
  (a remote heart smoke run: 27.8 and 30.7 s, against 36.0 and 32.4 s tracing twice,
  2026-12-05). `privacy_plan` gives the clients' noise (`params`).
  """
  comps = _BUILT.get(
    build_key(config, features, hospitals),
    lambda: _build(config, tuple(features), list(hospitals)),
  )
  if privacy_plan is None:
    return comps
  attack = attacks.from_config(config.attack, hospitals)  # `_build` checked both: same level.
  return dataclasses.replace(
    comps, params=process_lib.client_params(hospitals, privacy_plan, attack)
  )


def build_key(config, features, hospitals) -> tuple:
  """What `build`'s computations depend on: the whole config, the columns, the hospitals."""
  return (
    json.dumps(config.to_dict(), sort_keys=True, default=str),
    tuple(features),
    tuple(hospitals),
  )


def _build(config, features: tuple[str, ...], hospitals: list[str]) -> RunComputations:
  d = config.data
  attack = attacks.from_config(config.attack, hospitals)
  flips = attack is not None and attack.kind == 'label_flip'
  shape = image_shape(config) or (len(features),)
  shard_format = format_of(config, features)
  model = config.model.to_dict()

  def model_fn():
    return schema.model_fn(model, shape, d.num_classes, config.seed)()

  privacy_plan = privacy_structure(config, len(hospitals))
  processes.check_compatible(config, privacy_plan)
  process, params = process_lib.build(
    config, model_fn, hospitals, d.num_classes, privacy_plan, attack
  )
  plan = settings.local_training(d)
  if params is None:
    loader = shard_format.train_computation(plan, flip=flips)
  else:
    loader = shard_format.paired_train_computation(plan, params.type.element, params.dataset_fn)
  secure = config.algorithm.aggregator == 'secure'
  mask_size = secure_client_work.model_size(model_fn) if secure else 0
  process = compose.compose_loader(process, loader, paired=params is not None, mask_size=mask_size)
  evaluation = tff.simulation.compose_dataset_computation_with_learning_process(
    shard_format.test_computation(d.eval_batch_size),
    tff.learning.algorithms.build_fed_eval(
      model_fn, loop_implementation=tff.learning.LoopImplementation.DATASET_ITERATOR
    ),
  )
  moments = tff.simulation.compose_dataset_computation_with_computation(
    shard_format.features_computation(),
    federated_stats.dataset_moments_computation(statistics(config, features)),
  )
  return RunComputations(
    tuple(features),
    shard_format,
    shard_format.describe_computation(),
    moments,
    process,
    evaluation,
    lambda: schema.keras_model(model, shape, d.num_classes, config.seed),
    params,
    flips,
    mask_size,
  )


def worker_parts(comp: tff.Computation):
  """Yields (part, computation proto, result type) as TFF sends `comp` to a worker."""
  form = compiled.mergeable_form(comp)
  for part in PARTS:
    native = compiled.native(getattr(form, part))
    value, _ = value_serialization.serialize_value(native, native.type_signature)
    yield part, value.computation, native.type_signature.result
