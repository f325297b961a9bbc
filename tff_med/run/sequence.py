"""The run sequence every route goes through: a route prepares, `execute` does the rest.

A route (`run.simulated`, `deployment.coordinator`) turns a config into a
`Prepared` run: the composed learning process, what its clients receive each
round, the evaluator, the schema, the test sizes and the privacy plan.
`execute` alone writes the config and manifest, creates TFF's program state and
release managers, runs the rounds, exports the model and writes the results,
so every route gets every output the same way.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from tff_med.learning import communication, evaluation
from tff_med.run import attendance as attendance_lib
from tff_med.run import manifest, outputs, results, settings
from tff_med.run.loop import LoopResult, run_rounds
from tff_med.run.stopping import StoppingRule


@dataclasses.dataclass
class Prepared:
  """What a route hands the run sequence.

  Attributes:
    task: The run's task (`learning.task.Task`, or a deployment's `RemoteTask`).
    schema: Has `feature_names`, `label`, `num_classes` (the shards or a remote schema).
    process: The composed learning process.
    datasets_fn: (round, hospitals) -> the client inputs of that round.
    hospitals_fn: round -> the hospitals taking part.
    evaluator: Has `evaluate(state, process)` -> per-hospital metrics and `notes`.
    kind: 'classification' or 'survival'.
    test_sizes: {hospital or 'all': test rows}.
    stopping: The early-stopping rule.
    privacy_plan: A `budget.PrivacyPlan`, or None.
    shard_files: The files the manifest hashes (none when they live at the hospitals).
    route: hospitals -> a context routing TFF calls to them (remote), or None.
    available: hospitals -> those whose workers answer now (remote), or None.
    engine: What runs the rounds: 'tff' or 'fused' (`runtime.engine='auto'` resolved).
  """

  task: object
  schema: object
  process: object
  datasets_fn: Callable
  hospitals_fn: Callable[[int], list[str]]
  evaluator: object
  kind: str
  test_sizes: dict
  stopping: StoppingRule
  privacy_plan: object = None
  shard_files: list = dataclasses.field(default_factory=list)
  route: Callable | None = None
  available: Callable | None = None
  engine: str = 'tff'


@dataclasses.dataclass
class RunResult:
  """A finished run: the loop's result and what was written."""

  loop: LoopResult
  task: object
  workdir: str
  table: str
  privacy: dict  # What results.json says about privacy ({'level': 'none'} without DP).


def _round_metrics_fn(config, run: Prepared, attendance: attendance_lib.Attendance):
  """(round, hospitals) -> bytes sent and received, and epsilon spent so far (if private).

  Epsilon counts the rounds each hospital took part in, not those it was planned for.
  """
  cost = communication.communication_cost(
    run.task.keras_model(), aggregator=config.algorithm.aggregator
  )

  def round_metrics(round_num, hospitals):
    metrics = cost.round_metrics(len(hospitals))
    if run.privacy_plan is not None:
      run.privacy_plan.observe(attendance.planned, attendance.taken)
      metrics.update(run.privacy_plan.round_metrics(round_num))
    return metrics

  return round_metrics


def execute(config, workdir: str, run: Prepared, *, print_fn=print) -> RunResult:
  """Writes config and manifest, runs the rounds, exports the model and writes the results."""
  outputs.write_config(workdir, config.to_dict())
  manifest.write_manifest(
    workdir, config=config.to_dict(), seeds=[config.seed], shard_files=run.shard_files
  )
  state_manager, release_manager = outputs.create_managers(
    workdir, config.training.rounds, print_fn=print_fn, headline=results.HEADLINE[run.kind]
  )
  attendance = attendance_lib.from_config(
    config, run.schema.hospitals, route=run.route, available=run.available
  )
  attendance.check_past_rounds(os.path.join(workdir, outputs.METRICS_CSV))
  loop = run_rounds(
    run.process,
    datasets_fn=run.datasets_fn,
    hospitals_fn=run.hospitals_fn,
    evaluate_fn=lambda weights: run.evaluator.evaluate(weights, absent=attendance.out_now()),
    state_manager=state_manager,
    release_manager=release_manager,
    stopping=run.stopping,
    attendance=attendance,
    **settings.loop_settings(config.training),
    round_metrics_fn=_round_metrics_fn(config, run, attendance),
  )
  keras_model = run.task.keras_model()
  run.process.get_model_weights(loop.state).assign_weights_to(keras_model)
  privacy_summary = {'level': 'none'}
  if run.privacy_plan is not None:
    run.privacy_plan.observe(attendance.planned, attendance.taken)
    privacy_summary = run.privacy_plan.summary(loop.rounds_completed)
  table = results.finish_run(
    workdir,
    loop,
    keras_model,
    run.schema,
    run.task.standardizer,
    run.test_sizes,
    run.evaluator.notes,
    privacy_summary,
    attendance.summary(),
    run.engine,
    print_fn=print_fn,
  )
  return RunResult(loop, run.task, workdir, table, privacy_summary)


def with_union(sizes: dict[str, int]) -> dict[str, int]:
  """{hospital: test rows} with the union's size under `evaluation.ALL`."""
  return {**sizes, evaluation.ALL: sum(sizes.values())}
