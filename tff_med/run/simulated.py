"""The simulated route: every hospital on the local TFF worker (or the fused engine).

`prepare` loads and standardizes the shards, writes them where the local worker
reads them (`clients.resident`), applies a label-flip attack to the
adversaries' labels, and composes the learning process `learning.process.build`
chooses with the resident loaders; `run.sequence.execute` does the rest.
"""

from __future__ import annotations

import contextlib

from absl import logging

from tff_med import runtime
from tff_med.clients import compose, resident
from tff_med.learning import attacks, evaluation, fused_evaluation, fused_run, fused_support
from tff_med.learning import process as process_lib
from tff_med.learning import task as task_lib
from tff_med.learning.privacy import budget, processes
from tff_med.learning.secure import client_work as secure_client_work
from tff_med.learning.secure import simulation as secure_simulation
from tff_med.run import results, settings
from tff_med.run.sequence import Prepared, with_union
from tff_med.survival import evaluation as survival_evaluation


def process_and_inputs(config, task, plan, attack, privacy_plan, shards, masks=None):
  """The composed learning process and its (round, hospitals) -> client inputs function.

  Every process reads the data the local worker keeps (`shards`); a secure one
  also the masks the simulated hospitals write (`masks`: see `compose.with_loader`).
  """
  process, params = process_lib.build(
    config, task.model_fn(), task.data.hospitals, task.data.num_classes, privacy_plan, attack
  )
  return compose.with_loader(
    process,
    params,
    shards.train_computation(plan),
    lambda params_type, dataset_fn: shards.paired_train_computation(plan, params_type, dataset_fn),
    lambda round_num, hospitals: shards.train_inputs(
      hospitals, seed=config.seed, round_num=round_num
    ),
    config.seed,
    masks,
  )


def _simulated_masks(config, task, stack):
  """(mask size, tokens function) of simulated hospitals for a secure run, else None."""
  if config.algorithm.aggregator != 'secure':
    return None
  size = secure_client_work.model_size(task.model_fn())
  tokens = stack.enter_context(secure_simulation.simulated_hospitals(task.data.hospitals, size))
  return size, tokens


def _engine(config, task, privacy_plan, attack) -> str:
  """The engine that runs: `runtime.engine`, with 'auto' resolved (and said why)."""
  if config.runtime.engine != 'auto':
    return config.runtime.engine
  engine, why = fused_support.choose(config, task, privacy_plan=privacy_plan, attack=attack)
  logging.info("runtime.engine='auto' runs %s: %s.", engine, why)
  return engine


@contextlib.contextmanager
def prepare(config):
  """Yields the `Prepared` simulated run of `config` (checked by `settings.validate_training`)."""
  with contextlib.ExitStack() as stack:
    stack.enter_context(
      runtime.local_runtime(
        max_concurrent_computation_calls=config.runtime.max_concurrent_computation_calls,
      )
    )
    task = task_lib.load_task(config)
    hospitals = task.data.hospitals
    hospitals_fn = settings.hospitals_per_round(
      hospitals, config.algorithm.clients_per_round, config.seed
    )
    kind = results.task_kind(task.data)
    attack = attacks.from_config(config.attack, hospitals)
    privacy_plan = budget.plan(
      config, {s.hospital: len(s.y_train) for s in task.data.shards}, hospitals_fn
    )
    processes.check_compatible(config, privacy_plan)
    if attack is not None and attack.kind == 'label_flip':
      task.data = attacks.with_flipped_labels(task.data, attack)
    shards = stack.enter_context(resident.resident_shards(task.data))
    plan = settings.local_training(config.data)
    engine = _engine(config, task, privacy_plan, attack)
    if engine == 'fused':
      fused_support.check_supported(config, privacy_plan=privacy_plan, attack=attack)
      process, datasets_fn = fused_run.process_and_datasets(
        config, task, plan, attack, privacy_plan
      )
    else:
      masks = _simulated_masks(config, task, stack)
      process, datasets_fn = process_and_inputs(
        config, task, plan, attack, privacy_plan, shards, masks
      )
    if kind == 'survival':
      evaluator = survival_evaluation.SurvivalEvaluator(task.keras_model(), task.data)
    elif engine == 'fused':
      evaluator = fused_evaluation.FusedEvaluator(task, config.data.eval_batch_size)
    else:
      evaluator = evaluation.FederatedEvaluator.resident(
        task, shards, batch_size=config.data.eval_batch_size
      )
    yield Prepared(
      task=task,
      schema=task.data,
      process=process,
      datasets_fn=datasets_fn,
      hospitals_fn=hospitals_fn,
      evaluator=evaluator,
      kind=kind,
      test_sizes=with_union({s.hospital: len(s.y_test) for s in task.data.shards}),
      stopping=settings.stopping_rule(config.training.stopping, hospitals, kind),
      privacy_plan=privacy_plan,
      shard_files=[f for s in task.data.shards for f in s.files],
      engine=engine,
    )
