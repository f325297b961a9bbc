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

from tff_med.learning import algorithms, attacks, metrics
from tff_med.learning.privacy import dp_sgd, processes


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


def client_seed(seed: int, round_num: int, k: int) -> np.ndarray:
  """The stateless seed of client `k` (a position or a hospital index) in `round_num`."""
  return np.array([seed, round_num * 1000 + k], np.int64)


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
  if privacy_plan is not None:
    process = processes.build_private_learning_process(
      model_fn,
      config,
      len(hospitals),
      privacy_plan,
      metrics.loss_fn(num_classes, reduction='none'),
    )
    if privacy_plan.level != 'patient':
      return process, None
    noise = privacy_plan.noise_multipliers
    return process, ClientParams(
      dp_sgd.PARAMS_TYPE,
      dp_sgd.params_dataset,
      lambda h, position: (np.float32(noise[h]), hospitals.index(h)),
    )
  if attack is None or attack.kind not in attacks.UPDATE_ATTACKS:
    return algorithms.build_learning_process(model_fn, config.algorithm, len(hospitals)), None
  process = algorithms.build_attacked_learning_process(
    model_fn, config.algorithm, len(hospitals), attack
  )
  return process, ClientParams(
    attacks.ATTACK_TYPE,
    attacks.attack_dataset,
    lambda h, position: (np.int32(attack.code(h)), position),
  )
