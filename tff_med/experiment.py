"""One federated training run from a config: the function the binary and notebooks call."""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import tensorflow_federated as tff
from absl import logging

from tff_med import (
  algorithms,
  attacks,
  communication,
  dp_sgd,
  evaluation,
  fused,
  manifest,
  metrics,
  outputs,
  privacy,
  private_algorithms,
  run_results,
  runtime,
)
from tff_med import task as task_lib
from tff_med.data import client_data, resident
from tff_med.errors import ConfigError, unknown_name_error
from tff_med.stopping import StoppingRule
from tff_med.survival import evaluation as survival_evaluation
from tff_med.training_loop import LoopResult, run_rounds

NON_FINITE_ACTIONS = ('warn', 'error')
SECURE_EMULATION_WARNING = (
  "aggregator 'secure': TFF runs secure aggregation only in its test context, which "
  'emulates the secure sum insecurely (values are summed in the clear by the TFF worker). '
  "This run shows secure aggregation's numerics (clipping, quantization), not its security."
)


@dataclasses.dataclass
class RunResult:
  """A finished run: the loop's result and what was written."""

  loop: LoopResult
  task: task_lib.Task
  workdir: str
  table: str
  privacy: dict  # What results.json says about privacy ({'level': 'none'} without DP).


def validate_training(config) -> None:
  """Checks the `training` block before any work is done."""
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
  if config.runtime.engine not in fused.ENGINES:
    raise unknown_name_error('engine', config.runtime.engine, fused.ENGINES)
  if task_lib.survival_columns(config.data):
    _check_survival_support(config)


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
    "deployment.workers (the union's C-index compares patients across hospitals)": bool(
      config.get('deployment') and config.deployment.workers
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
  """Returns round -> hospitals: all of them (cross-silo), or a seeded sample."""
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


def process_and_inputs(config, task, plan, attack, privacy_plan, shards):
  """The learning process and its (round, hospitals) -> client inputs function.

  Every process reads the data the worker keeps (`shards`). The patient-level
  DP and attacked processes also take each hospital's parameters (noise
  multiplier or attack code, and a seed), built in the worker next to its data.
  """
  hospitals = task.data.hospitals
  if privacy_plan is not None:
    process = private_algorithms.build_private_learning_process(
      task.model_fn(),
      config,
      len(hospitals),
      privacy_plan,
      metrics.loss_fn(task.data.num_classes, reduction='none'),
    )
    if privacy_plan.level != 'patient':
      return _with_resident_data(process, config, plan, shards)
    noise = privacy_plan.noise_multipliers
    return _with_resident_params(
      process,
      config,
      plan,
      shards,
      (dp_sgd.PARAMS_TYPE, dp_sgd.params_dataset),
      lambda h, position: (np.float32(noise[h]), hospitals.index(h)),
    )
  if attack is None or attack.kind not in attacks.UPDATE_ATTACKS:
    process = algorithms.build_learning_process(task.model_fn(), config.algorithm, len(hospitals))
    return _with_resident_data(process, config, plan, shards)
  process = algorithms.build_attacked_learning_process(
    task.model_fn(), config.algorithm, len(hospitals), attack
  )
  return _with_resident_params(
    process,
    config,
    plan,
    shards,
    (attacks.ATTACK_TYPE, attacks.attack_dataset),
    lambda h, position: (np.int32(attack.code(h)), position),
  )


def _with_resident_data(process, config, plan, shards):
  composed = tff.simulation.compose_dataset_computation_with_learning_process(
    shards.train_computation(plan), process
  )
  return composed, lambda round_num, hospitals: shards.train_inputs(
    hospitals, seed=config.seed, round_num=round_num
  )


def _with_resident_params(process, config, plan, shards, params, value_fn):
  """`process` on (params, data) pairs the worker builds.

  `params` is (its sequence type, the function building its dataset);
  `value_fn(hospital, position in the round)` gives (value, k): the hospital's
  value and the seed (config seed, round * 1000 + k).
  """
  params_type, params_dataset_fn = params
  loader = shards.paired_train_computation(plan, params_type.element, params_dataset_fn)
  composed = resident.compose_with_learning_process(loader, process)

  def inputs_fn(round_num, hospitals):
    data = shards.train_inputs(hospitals, seed=config.seed, round_num=round_num)
    pairs = []
    for position, (h, spec) in enumerate(zip(hospitals, data, strict=True)):
      value, k = value_fn(h, position)
      pairs.append(((value, np.array([config.seed, round_num * 1000 + k], np.int64)), spec))
    return pairs

  return composed, inputs_fn


def _round_metrics_fn(config, task, hospitals_fn, privacy_plan):
  """round -> bytes sent and received, and epsilon spent so far (if private)."""
  cost = communication.communication_cost(
    task.keras_model(), compressed=config.algorithm.aggregator == 'compression'
  )

  def round_metrics(round_num):
    metrics = cost.round_metrics(len(hospitals_fn(round_num)))
    if privacy_plan is not None:
      metrics.update(privacy_plan.round_metrics(round_num))
    return metrics

  return round_metrics


def stopping_rule(config, hospitals: list[str], kind: str = 'classification') -> StoppingRule:
  """The early-stopping rule; an active rule must watch a metric the run reports."""
  rule = StoppingRule(**config.to_dict())
  valid = [
    outputs.eval_key(h, m)
    for h in hospitals + [evaluation.ALL]
    for m, _, _ in run_results.TABLE_COLUMNS[kind]
  ]
  if (rule.patience or rule.target is not None) and rule.metric not in valid:
    raise ConfigError(
      f'training.stopping.metric {rule.metric!r} is not reported; valid: {", ".join(valid)}'
    )
  return rule


def train(config, workdir: str, *, print_fn=print) -> RunResult:
  """Trains the config's model federatedly; writes everything under `workdir`.

  Rerunning with the same config and workdir resumes from the last checkpoint.
  With `config.deployment.workers` set, the hospitals are remote TFF workers
  (`deployment.coordinator.train_remote`); otherwise all are simulated here.

  Args:
    config: An experiment `ml_collections.ConfigDict` (see `configs/`).
    workdir: Output directory (checkpoints, TensorBoard, CSV, model, results).
    print_fn: Where progress lines and the results table go.

  Returns:
    A `RunResult`.

  Raises:
    ConfigError, ShardError: Bad config or data, before any training.
  """
  if config.get('deployment') and config.deployment.workers:
    # Imported here: the coordinator builds on this module.
    from tff_med.deployment import coordinator

    return coordinator.train_remote(config, workdir, print_fn=print_fn)
  validate_training(config)
  t = config.training
  plan = local_training(config.data)
  secure = config.algorithm.aggregator == 'secure'
  if secure:
    logging.warning('%s', SECURE_EMULATION_WARNING)
  with contextlib.ExitStack() as stack:
    stack.enter_context(
      runtime.local_runtime(
        max_concurrent_computation_calls=config.runtime.max_concurrent_computation_calls,
        emulate_secure_sum=secure,
      )
    )
    task = task_lib.load_task(config)
    hospitals_fn = hospitals_per_round(
      task.data.hospitals, config.algorithm.clients_per_round, config.seed
    )
    kind = run_results.task_kind(task.data)
    stopping = stopping_rule(t.stopping, task.data.hospitals, kind)
    attack = attacks.from_config(config.attack, task.data.hospitals)
    privacy_plan = privacy.plan(
      config, {s.hospital: len(s.y_train) for s in task.data.shards}, hospitals_fn
    )
    private_algorithms.check_compatible(config, privacy_plan)
    if attack is not None and attack.kind == 'label_flip':
      task.data = attacks.with_flipped_labels(task.data, attack)
    shards = stack.enter_context(resident.resident_shards(task.data))
    if config.runtime.engine == 'fused':
      fused.check_supported(config, privacy_plan=privacy_plan, attack=attack)
      process, datasets_fn = fused.process_and_datasets(config, task, plan)
    else:
      process, datasets_fn = process_and_inputs(config, task, plan, attack, privacy_plan, shards)
    outputs.write_config(workdir, config.to_dict())
    manifest.write_manifest(
      workdir,
      config=config.to_dict(),
      seeds=[config.seed],
      shard_files=[f for s in task.data.shards for f in s.files],
    )
    test_sizes = {s.hospital: len(s.y_test) for s in task.data.shards}
    test_sizes[evaluation.ALL] = sum(test_sizes.values())
    state_manager, release_manager = outputs.create_managers(
      workdir, t.rounds, print_fn=print_fn, headline=run_results.HEADLINE[kind]
    )
    if kind == 'survival':
      evaluator = survival_evaluation.SurvivalEvaluator(task.keras_model(), task.data)
    else:
      evaluator = evaluation.FederatedEvaluator.resident(
        task.model_fn(), shards, batch_size=config.data.eval_batch_size
      )
    loop = run_rounds(
      process,
      datasets_fn=datasets_fn,
      hospitals_fn=hospitals_fn,
      evaluate_fn=evaluator.evaluate,
      state_manager=state_manager,
      release_manager=release_manager,
      stopping=stopping,
      **loop_settings(t),
      round_metrics_fn=_round_metrics_fn(config, task, hospitals_fn, privacy_plan),
    )
    keras_model = task.keras_model()
    process.get_model_weights(loop.state).assign_weights_to(keras_model)
  privacy_summary = (
    privacy_plan.summary(loop.rounds_completed) if privacy_plan else {'level': 'none'}
  )
  table = run_results.finish_run(
    workdir,
    loop,
    keras_model,
    task.data,
    task.standardizer,
    test_sizes,
    evaluator.notes,
    privacy_summary,
    print_fn=print_fn,
  )
  return RunResult(loop, task, workdir, table, privacy_summary)
