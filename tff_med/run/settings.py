"""A run's settings checked before any work, and turned into what the loop takes."""

from __future__ import annotations

import numpy as np

from tff_med.clients import client_data
from tff_med.errors import ConfigError, unknown_name_error
from tff_med.learning import algorithms, evaluation, fused_support, process
from tff_med.learning import task as task_lib
from tff_med.run import attendance, outputs, results
from tff_med.run.stopping import StoppingRule

NON_FINITE_ACTIONS = ('warn', 'error')


def validate_training(config, *, remote: bool = False) -> None:
  """Checks the `training` block (and what every route shares) before any work is done."""
  t = config.training
  for name in ('rounds', 'eval_every', 'checkpoint_every'):
    if t[name] < 1:
      raise ConfigError(f'training.{name} must be >= 1, got {t[name]}')
  if t.on_non_finite not in NON_FINITE_ACTIONS:
    raise ConfigError(
      f'training.on_non_finite must be one of {NON_FINITE_ACTIONS}, got {t.on_non_finite!r}'
    )
  if config.algorithm.clients_per_round < 0:
    raise ConfigError('algorithm.clients_per_round must be >= 0 (0 means every hospital)')
  algorithms.validate(config.algorithm)
  local_training(config.data)
  if config.data.eval_batch_size < 1:
    raise ConfigError(f'data.eval_batch_size must be >= 1, got {config.data.eval_batch_size}')
  if config.runtime.engine not in fused_support.ENGINES:
    raise unknown_name_error('engine', config.runtime.engine, fused_support.ENGINES)
  if task_lib.survival_columns(config.data):
    _check_survival_support(config)
  attendance.check_settings(config, remote=remote)


def _check_survival_support(config) -> None:
  """Refuses, in one place, what a survival study cannot run, naming each setting."""
  refused = {
    "privacy.level='patient' (the Cox partial likelihood has no per-patient form to clip)": (
      config.privacy.level == 'patient'
    ),
    "attack.kind='label_flip' (survival targets have no classes to flip)": (
      config.attack.kind == 'label_flip'
    ),
    "runtime.engine='fused' (proved on classification losses only)": (
      config.runtime.engine == 'fused'
    ),
    f'data.source={config.data.source!r} (survival shards are CSV)': config.data.source == 'npz',
  }
  named = [name for name, on in refused.items() if on]
  if named:
    raise ConfigError(f'a survival study does not support {"; ".join(named)}')


def local_training(data) -> client_data.LocalTraining:
  """How each hospital trains per round, from the `data` block (checked)."""
  return client_data.LocalTraining(data.batch_size, data.local_steps, data.local_epochs)


def loop_settings(training) -> dict:
  """The `training` block's settings, as `run_rounds` keyword arguments."""
  return {
    'rounds': training.rounds,
    'eval_every': training.eval_every,
    'checkpoint_every': training.checkpoint_every,
    'on_non_finite': training.on_non_finite,
  }


def hospitals_per_round(hospitals: list[str], clients_per_round: int, seed: int):
  """Returns round -> hospitals: all of them (cross-silo), or a seeded sample.

  Raises:
    ConfigError: More hospitals than their client seeds tell apart, or than there are to sample.
  """
  if len(hospitals) > process.MAX_HOSPITALS:
    raise ConfigError(
      f'{len(hospitals)} hospitals; tff_med runs at most {process.MAX_HOSPITALS} (beyond, '
      "two hospitals' DP noise and attack seeds would coincide)"
    )
  if clients_per_round in (0, len(hospitals)):
    return lambda round_num: list(hospitals)
  if clients_per_round > len(hospitals):
    raise ConfigError(
      f'clients_per_round={clients_per_round} but there are only {len(hospitals)} hospitals'
    )

  def sample(round_num: int) -> list[str]:
    rng = np.random.RandomState((seed * 7919 + round_num) % (2**31 - 1))
    return sorted(rng.choice(hospitals, clients_per_round, replace=False).tolist())

  return sample


def stopping_rule(stopping, hospitals: list[str], kind: str = 'classification') -> StoppingRule:
  """The `training.stopping` block's rule; an active rule must watch a metric the run reports."""
  rule = StoppingRule(**stopping.to_dict())
  valid = [
    outputs.eval_key(h, m)
    for h in hospitals + [evaluation.ALL]
    for m, _, _ in results.TABLE_COLUMNS[kind]
  ]
  if (rule.patience or rule.target is not None) and rule.metric not in valid:
    raise ConfigError(
      f'training.stopping.metric {rule.metric!r} is not reported; valid: {", ".join(valid)}'
    )
  return rule
