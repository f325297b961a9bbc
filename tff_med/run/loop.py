"""The federated training loop: rounds, evaluation, checkpoints, faults, stopping.

Modelled on TFF's `tff.simulation.run_training_process`, which does not offer
resumable early stopping or detection of zeroed client updates; the loop
receives its managers and data functions and knows no paths.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import math
import time
from collections.abc import Callable

from absl import logging

from tff_med.errors import NonFiniteUpdateError
from tff_med.learning import non_finite
from tff_med.learning.secure import aggregator as secure_aggregator
from tff_med.run import outputs
from tff_med.run.attendance import Attendance
from tff_med.run.stopping import StoppingRule


@dataclasses.dataclass
class LoopResult:
  """What the loop ends with."""

  state: object
  rounds_completed: int
  stop_reason: str
  final_eval: dict[str, dict[str, float]]
  resumed_from: int | None
  non_finite_rounds: list[int]


def run_sync(coroutine):
  """Runs a TFF program coroutine to completion, also inside Jupyter's running event loop.

  `asyncio.run` refuses to start while a loop runs (as in every notebook
  kernel); there the coroutine runs on its own loop in a helper thread.
  """
  try:
    asyncio.get_running_loop()
  except RuntimeError:
    return asyncio.run(coroutine)
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    return pool.submit(asyncio.run, coroutine).result()


def flatten_eval(results: dict[str, dict[str, float]]) -> dict[str, float]:
  """{'cleveland': {'auc': v}} -> {'eval/cleveland/auc': v}."""
  return {outputs.eval_key(h, m): v for h, ms in results.items() for m, v in ms.items()}


def _train_metrics(metrics) -> dict[str, float]:
  zeroed, rejected = non_finite.round_faults(metrics)
  train = {
    f'{outputs.TRAIN_PREFIX}{k}': float(v) for k, v in metrics['client_work']['train'].items()
  }
  train[f'{outputs.TRAIN_PREFIX}{non_finite.ZERO_WEIGHT_CLIENTS}'] = zeroed
  train[f'{outputs.TRAIN_PREFIX}update_non_finite'] = int(rejected)
  inner = metrics.get('aggregator', {}).get('inner', {})
  if secure_aggregator.CLIPPED in inner:  # Secure aggregation: coordinates clipped to secure.clip.
    clipped = int(inner[secure_aggregator.CLIPPED])
    train[f'{outputs.TRAIN_PREFIX}{secure_aggregator.CLIPPED}'] = clipped
  return train


def _program_state(state, round_num, rule: StoppingRule, attendance: Attendance):
  return {
    'state': state,
    'round': round_num,
    'best': rule.best,
    'best_round': rule.best_round,
    'attendance': attendance.to_array(),
  }


def run_rounds(
  process,
  *,
  datasets_fn: Callable[[int, list[str]], list],
  hospitals_fn: Callable[[int], list[str]],
  evaluate_fn: Callable[[object], dict[str, dict[str, float]]],
  rounds: int,
  eval_every: int,
  checkpoint_every: int,
  state_manager,
  release_manager,
  stopping: StoppingRule,
  on_non_finite: str = 'warn',
  attendance: Attendance,
  round_metrics_fn: Callable[[int, list[str]], dict[str, float]] | None = None,
) -> LoopResult:
  """Runs `process` to `rounds` rounds or until `stopping` says stop.

  Args:
    process: A `tff.learning.templates.LearningProcess`.
    datasets_fn: (round, hospitals) -> the client datasets of that round.
    hospitals_fn: round -> the hospitals taking part.
    evaluate_fn: model weights -> {hospital or 'all': {metric: value}}.
    rounds: The last round number.
    eval_every: Evaluate every this many rounds (and at rounds 0 and last).
    checkpoint_every: Save program state every this many rounds (and at the end).
    state_manager: A `tff.program.ProgramStateManager`; resumes from its latest.
    release_manager: A `tff.program.ReleaseManager` for each round's metrics.
    stopping: The early-stopping rule.
    on_non_finite: 'warn' or 'error' when a client update or a round is non-finite.
    attendance: Who takes part in each round (`run.attendance`): routes the
      calls and redoes a round without a hospital that drops out.
    round_metrics_fn: (round, hospitals that took part) -> extra metrics
      released with it (e.g. epsilon spent).

  Returns:
    A `LoopResult`.

  Raises:
    NonFiniteUpdateError: A non-finite update and `on_non_finite == 'error'`;
      or, whatever `on_non_finite` says, every round run left the model
      unchanged (all updates zeroed or the aggregate rejected): such a run
      trained nothing and must not end as a success.
    DeploymentError: Fewer hospitals than `attendance` needs can take part.
  """
  state, start = _restore(process, state_manager, stopping, attendance, hospitals_fn(1))
  evaluation, reason, faults, unchanged = None, None, [], 0
  if start == 0:
    evaluation = evaluate_fn(process.get_model_weights(state))
    run_sync(release_manager.release(flatten_eval(evaluation), 0))
    stopping.update(0, flatten_eval(evaluation))
  round_num = start
  while round_num < rounds and reason is None:
    round_num += 1
    output, metrics, hospitals = _train_round(
      process, state, round_num, hospitals_fn, datasets_fn, attendance, round_metrics_fn
    )
    if _report_faults(
      process, state, metrics, round_num, hospitals, datasets_fn, on_non_finite, attendance.route
    ):
      faults.append(round_num)
      unchanged += _model_unchanged(metrics, hospitals)
    state = output.state
    last = round_num == rounds
    if last or round_num % eval_every == 0:
      evaluation = evaluate_fn(process.get_model_weights(state))
      metrics.update(flatten_eval(evaluation))
      reason = stopping.update(round_num, metrics)
    run_sync(release_manager.release(metrics, round_num))
    if last or reason or round_num % checkpoint_every == 0:
      run_sync(
        state_manager.save(_program_state(state, round_num, stopping, attendance), round_num)
      )
  _check_something_trained(start, round_num, unchanged)
  if evaluation is None:  # Resumed at the end: evaluate the restored model.
    evaluation = evaluate_fn(process.get_model_weights(state))
  return LoopResult(
    state, round_num, reason or f'completed all {rounds} rounds', evaluation, start or None, faults
  )


def _check_something_trained(start: int, last: int, unchanged: int) -> None:
  if last > start and unchanged == last - start:
    raise NonFiniteUpdateError(
      f'every round from {start + 1} to {last} was non-finite (see the warnings above): '
      'the model never changed. Check the shards for extreme values, or lower the learning rate.'
    )


def _restore(process, state_manager, stopping: StoppingRule, attendance: Attendance, hospitals):
  """(state, round) from the latest checkpoint, or the initial state and 0."""
  with attendance.route(hospitals):
    initial = _program_state(process.initialize(), 0, stopping, attendance)
  saved, _ = run_sync(state_manager.load_latest(initial))
  if saved is None:
    return initial['state'], 0
  stopping.best, stopping.best_round = float(saved['best']), int(saved['best_round'])
  attendance.restore(saved['attendance'])
  logging.info('Resuming from the checkpoint of round %d.', int(saved['round']))
  return saved['state'], int(saved['round'])


def _train_round(process, state, round_num, hospitals_fn, datasets_fn, attendance, extra_fn):
  """One round on the hospitals that can take part: (its output, its metrics, those hospitals)."""

  def step(hospitals):
    began = time.perf_counter()
    output = process.next(state, datasets_fn(round_num, hospitals))
    metrics = _train_metrics(output.metrics)
    metrics[outputs.ROUND_SECONDS] = time.perf_counter() - began
    return output, metrics

  (output, metrics), hospitals = attendance.train(round_num, hospitals_fn(round_num), step)
  clipped = metrics.get(f'{outputs.TRAIN_PREFIX}{secure_aggregator.CLIPPED}', 0)
  if clipped:
    logging.warning(
      "Round %d: secure aggregation clipped %d coordinates of the hospitals' updates to "
      '[-secure.clip, secure.clip] (summed over hospitals); raise secure.clip if it persists.',
      round_num,
      clipped,
    )
  metrics.update(attendance.round_metrics(round_num))
  if extra_fn is not None:
    metrics.update(extra_fn(round_num, hospitals))
  return output, metrics, hospitals


def _model_unchanged(metrics, hospitals) -> bool:
  """True when a round's aggregate was rejected or every hospital's update was zeroed."""
  zeroed = metrics[f'{outputs.TRAIN_PREFIX}{non_finite.ZERO_WEIGHT_CLIENTS}']
  return bool(metrics[f'{outputs.TRAIN_PREFIX}update_non_finite']) or zeroed >= len(hospitals)


def _report_faults(
  process, state, metrics, round_num, hospitals, datasets_fn, on_non_finite, route
) -> bool:
  zeroed = metrics[f'{outputs.TRAIN_PREFIX}{non_finite.ZERO_WEIGHT_CLIENTS}']
  rejected = metrics[f'{outputs.TRAIN_PREFIX}update_non_finite']
  if not zeroed and not rejected:
    return False
  messages = []
  if zeroed:
    if f'{outputs.TRAIN_PREFIX}{secure_aggregator.CLIPPED}' in metrics:
      # One hospital alone would reveal its update: not asked under secure aggregation.
      culprits = ['not identified under secure aggregation']
    else:
      culprits = _zeroed_hospitals(process, state, round_num, hospitals, datasets_fn, route)
    messages.append(
      f'the non-finite update of {zeroed} hospital(s) ({", ".join(culprits)}) was zeroed '
      'and given weight 0, as TFF does'
    )
  if rejected:
    messages.append('the aggregated update was non-finite, so TFF left the model unchanged')
  message = f'Round {round_num}: ' + '; '.join(messages) + '.'
  if on_non_finite == 'error':
    raise NonFiniteUpdateError(message + " (training.on_non_finite='error')")
  logging.warning('%s', message)
  return True


def _zeroed_hospitals(process, state, round_num, hospitals, datasets_fn, route) -> list[str]:
  """Re-runs the round one hospital at a time to name whose update was zeroed."""
  culprits = []
  for hospital in hospitals:
    with route([hospital]):
      output = process.next(state, datasets_fn(round_num, [hospital]))
    zeroed, _ = non_finite.round_faults(output.metrics)
    if zeroed or any(math.isnan(float(v)) for v in output.metrics['client_work']['train'].values()):
      culprits.append(hospital)
  return culprits or ['unidentified']
