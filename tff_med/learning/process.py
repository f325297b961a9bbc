"""The one place a run's learning process is chosen: plain, attacked, or private.

Every route (simulated on the local worker, remote hospitals) calls `build`
and composes the result with its own loader (`clients.compose`), so a feature
added here runs on every route. The patient-level DP and update-attack
processes take, next to each hospital's data, a one-element dataset of its
parameters (noise multiplier or attack code, and a seed): `ClientParams` says
what they are, and the loaders build that dataset in the worker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow_federated as tff
from tensorflow_federated.python.learning.templates import proximal_client_work

from tff_med import runtime  # noqa: F401  (installs the owned TFF context these calls run in)
from tff_med.errors import ConfigError
from tff_med.learning import algorithms, attacks, metrics, non_finite
from tff_med.learning.privacy import dp_sgd, processes
from tff_med.learning.secure import aggregator as secure_aggregator
from tff_med.learning.secure import client_work as secure_client_work
from tff_med.learning.secure import settings as secure_settings


@dataclasses.dataclass(frozen=True)
class ClientParams:
  """Per-hospital parameters a client receives beside its data.

  Attributes:
    type: Their TFF sequence type (`dp_sgd.PARAMS_TYPE`, `attacks.ATTACK_TYPE`).
    dataset_fn: Builds the one-element dataset from a value of `type.element`.
    value_fn: (hospital, position in the round) -> (value, k); the seed sent is
      (config seed, round * 1000 + k).
  """

  type: tff.SequenceType
  dataset_fn: Callable
  value_fn: Callable[[str, int], tuple]

  def value(self, hospital: str, position: int, seed: int, round_num: int):
    """The value `hospital` receives in `round_num`."""
    value, k = self.value_fn(hospital, position)
    return value, client_seed(seed, round_num, k)


# Client seeds are (seed, round * 1000 + k): unique per round and client up to this many.
MAX_HOSPITALS = 1000


def client_seed(seed: int, round_num: int, k) -> np.ndarray:
  """The stateless seed of client `k` (a position or a hospital index) in `round_num`.

  int64 [2], or [clients, 2] for an array of `k`s; distinct for `k` < MAX_HOSPITALS.
  """
  return np.stack(np.broadcast_arrays(seed, round_num * 1000 + np.asarray(k)), -1).astype(np.int64)


def build(config, model_fn, hospitals: list[str], num_classes: int, privacy_plan, attack):
  """Returns (learning process, `ClientParams` or None) for the config's algorithm.

  Args:
    config: The experiment config.
    model_fn: No-arg function returning a fresh `tff.learning.models.VariableModel`.
    hospitals: Every hospital of the study.
    num_classes: Classes of the label (for the per-example loss of DP-SGD).
    privacy_plan: A `budget.PrivacyPlan`, or None.
    attack: An `attacks.Attack`, or None.
  """
  params = client_params(hospitals, privacy_plan, attack)
  if config.algorithm.aggregator == 'secure':
    return _build_secure(config, model_fn, hospitals, num_classes, privacy_plan, attack), params
  if privacy_plan is not None:
    process = processes.build_private_learning_process(
      model_fn,
      config,
      len(hospitals),
      privacy_plan,
      metrics.loss_fn(num_classes, reduction='none'),
    )
    return process, params
  if params is None:
    return algorithms.build_learning_process(model_fn, config.algorithm, len(hospitals)), None
  process = algorithms.build_attacked_learning_process(
    model_fn, config.algorithm, len(hospitals), attack
  )
  return process, params


def client_params(hospitals: list[str], privacy_plan, attack) -> ClientParams | None:
  """What `build`'s clients take beside their data: DP-SGD's noise, an update attack's code.

  None when they take nothing more (no patient-level DP, no update attack). Data,
  not part of the computations: a remote run's plan is the same for every noise.
  """
  if privacy_plan is not None:
    return _patient_params(privacy_plan, hospitals) if privacy_plan.level == 'patient' else None
  if attack is not None and attack.kind in attacks.UPDATE_ATTACKS:
    return _attack_params(attack)
  return None


def _attack_params(attack) -> ClientParams:
  return ClientParams(
    attacks.ATTACK_TYPE,
    attacks.attack_dataset,
    lambda h, position: (np.int32(attack.code(h)), position),
  )


def _patient_params(privacy_plan, hospitals) -> ClientParams:
  noise = privacy_plan.noise_multipliers
  return ClientParams(
    dp_sgd.PARAMS_TYPE,
    dp_sgd.params_dataset,
    lambda h, position: (np.float32(noise[h]), hospitals.index(h)),
  )


def _delta_client_work(model_fn, a):
  """TFF's model-delta client work of the algorithm: FedProx's proximal one, or FedAvg's."""
  common = dict(loop_implementation=tff.learning.LoopImplementation.DATASET_ITERATOR)
  optimizer, weighting = algorithms.client_optimizer(a), algorithms.WEIGHTINGS[a.client_weighting]
  if a.name == 'fedprox':  # As tff.learning.algorithms.build_weighted_fed_prox builds it.
    return proximal_client_work.build_model_delta_client_work(
      model_fn, optimizer, weighting, delta_l2_regularizer=a.proximal_strength, **common
    )
  return tff.learning.templates.build_model_delta_client_work(
    model_fn, optimizer, weighting, **common
  )


def _build_secure(config, model_fn, hospitals, num_classes, privacy_plan, attack):
  """The FedAvg family and FedProx, masked secure aggregation around any of their client works.

  Clients take (mask dataset, what the client work takes): `secure.client_work`.
  """
  quantization = secure_settings.check(config, hospitals)
  processes.check_compatible(config, privacy_plan)
  a = config.algorithm
  algorithms.validate(a)
  if privacy_plan is not None:
    inner = dp_sgd.build_dp_sgd_client_work(
      model_fn,
      metrics.loss_fn(num_classes, reduction='none'),
      algorithms.client_optimizer(a),
      l2_norm_clip=privacy_plan.l2_norm_clip,
      weighted=a.client_weighting == 'num_examples',
    )
  else:
    inner = _delta_client_work(model_fn, a)
    if attack is not None and attack.kind in attacks.UPDATE_ATTACKS:
      if a.name == 'fedprox':
        raise ConfigError("update attacks are simulated for the FedAvg family only, not 'fedprox'")
      inner = attacks.build_attacked_client_work(
        inner, scale=attack.scale, noise_std=attack.noise_std
      )
  size = secure_client_work.model_size(model_fn)
  process = algorithms.compose_fed_avg(
    model_fn,
    client_work=secure_client_work.build_masked_client_work(inner, size),
    server_optimizer=algorithms.server_optimizer(a),
    model_aggregator=non_finite.CountZeroWeightFactory(
      secure_aggregator.MaskedMeanFactory(quantization)
    ),
  )
  return process
