"""How far the fused engine is from TFF's learning process, per algorithm, on the heart study.

For each algorithm of the FedAvg family, patient-level DP-SGD and an MLP with dropout,
runs the heart main job's rounds on TFF and on the fused engine side by side and
prints the largest difference in
any weight: over the whole trajectory (each engine from its own previous
round), and per round (the fused round started from TFF's state, which is what
a tolerance per round means when an optimizer amplifies rounding).

  uv run python -m benchmarks.fused_equality
  uv run python -m benchmarks.fused_equality --rounds=5 --algorithms=fedadam,fedprox
"""

from __future__ import annotations

import tempfile

import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks.jobs import CASES, with_case
from configs import heart_disease
from tff_med import runtime
from tff_med.clients import client_data, resident
from tff_med.learning import fused_run
from tff_med.learning import task as task_lib
from tff_med.learning.privacy import budget
from tff_med.run import simulated

_ROUNDS = flags.DEFINE_integer('rounds', 15, 'Rounds per algorithm (the heart job has 15).')
_ALGORITHMS = flags.DEFINE_list('algorithms', list(CASES), 'Which of CASES to measure.')


def _largest_difference(a, b) -> float:
  return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


def _from_tff(tff_state, fused_process) -> dict:
  template = fused_process.initialize()['server_optimizer']
  return {
    'trainable': [np.asarray(w) for w in tff_state.global_model_weights.trainable],
    'server_optimizer': tf.nest.pack_sequence_as(template, tf.nest.flatten(tff_state.finalizer)),
    'aggregator': fused_process.initialize()['aggregator'],  # The mean's: empty.
  }


def measure(change: dict, rounds: int, root: str | None = None) -> tuple[float, float]:
  """(largest difference over the trajectory, largest difference of one round from TFF's state).

  The heart shards are written to `root` (default: a new temporary directory).
  """
  config = with_case(heart_disease.get_config(), change)
  config.data.root = root or tempfile.mkdtemp(prefix='heart_')
  with runtime.local_runtime():
    task = task_lib.load_task(config)
    plan = client_data.LocalTraining(config.data.batch_size, config.data.local_steps)
    hospitals = task.data.hospitals
    sizes = {s.hospital: len(s.y_train) for s in task.data.shards}
    private = budget.plan(config, sizes, lambda _: hospitals)
    with resident.resident_shards(task.data) as kept:
      tff_process, inputs_fn = simulated.process_and_inputs(config, task, plan, None, private, kept)
      fused_process, datasets_fn = fused_run.process_and_datasets(config, task, plan, None, private)
      tff_state, fused_state = tff_process.initialize(), fused_process.initialize()
      trajectory = per_round = 0.0
      for round_num in range(1, rounds + 1):
        from_tff = fused_process.next(
          _from_tff(tff_state, fused_process), datasets_fn(round_num, hospitals)
        )
        fused_state = fused_process.next(fused_state, datasets_fn(round_num, hospitals)).state
        tff_state = tff_process.next(tff_state, inputs_fn(round_num, hospitals)).state
        want = tff_process.get_model_weights(tff_state).trainable
        trajectory = max(trajectory, _largest_difference(want, fused_state['trainable']))
        per_round = max(per_round, _largest_difference(want, from_tff.state['trainable']))
  return trajectory, per_round


def main(argv):
  del argv
  print(f'Largest weight difference, fused engine vs TFF, heart job, {_ROUNDS.value} rounds:')
  print(f'{"algorithm":18s} {"trajectory":>12s} {"per round":>12s}')
  for name in _ALGORITHMS.value:
    trajectory, per_round = measure(CASES[name], _ROUNDS.value)
    print(f'{name:18s} {trajectory:12.1e} {per_round:12.1e}', flush=True)


if __name__ == '__main__':
  app.run(main)
