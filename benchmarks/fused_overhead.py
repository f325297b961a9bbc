r"""The fused engine's round, per algorithm, against the XLA-compiled plain-TensorFlow reference.

  uv run python -m benchmarks.fused_overhead [--rounds=30]   (round_overhead's flags)

On the heart job, times a steady round (median of rounds 6..N, the implementations
taking turns every round) of the fused engine for every case of
`benchmarks.fused_equality` and of `round_overhead`'s 'fused tf.function + XLA'
reference on the case's model (heart's logistic regression; the MLP with dropout of
'mlp_dropout'): FedAvg's local SGD steps and weighted mean, compiled by XLA, without
metrics. The reference does FedAvg's arithmetic, so for the other algorithms it
is a lower bound (their server optimizers, momentum, proximal terms are extra
work); DP-SGD's per-example gradients have no counterpart in it, so its ratio is
printed but not a target. Target (#19): within 1.5x of the reference.
"""

import time

import numpy as np
import tensorflow as tf
from absl import app

from benchmarks import jobs
from benchmarks.jobs import CASES
from benchmarks.round_overhead import _ROUNDS, WARMUP, _plain_xla
from tff_med.learning import fused_run
from tff_med.learning import task as task_lib
from tff_med.learning.privacy import budget


def _fused(task, config):
  hospitals = task.data.hospitals
  sizes = {s.hospital: len(s.y_train) for s in task.data.shards}
  private = budget.plan(config, sizes, lambda _: hospitals)
  process, datasets = fused_run.process_and_datasets(config, task, jobs.plan(config), None, private)
  state = [process.initialize()]

  def step(round_num):
    state[0] = process.next(state[0], datasets(round_num, hospitals)).state

  return step


def main(argv):
  del argv
  tf.get_logger().setLevel('ERROR')
  with jobs.loaded('heart') as (task, config, _):
    datasets_fn = jobs.datasets_fn(task, config)
    steps, reference_of = {}, {}
    for name, change in CASES.items():
      case = jobs.with_case(config, change)
      case_task = task_lib.load_task(case) if 'model' in change else task
      reference = f'XLA reference ({case.model.name}, dropout {case.model.dropout})'
      if reference not in steps:  # FedAvg's steps on the case's model.
        steps[reference], _ = _plain_xla(
          case_task,
          datasets_fn,
          case.algorithm.client_learning_rate,
          case.data.local_steps,
          unroll='model' not in change,
        )
      steps[name], reference_of[name] = _fused(case_task, case), reference
    times = {name: [] for name in steps}
    for r in range(1, _ROUNDS.value + 1):
      for name, step in steps.items():
        began = time.perf_counter()
        step(r)
        times[name].append(time.perf_counter() - began)
  medians = {name: float(np.median(t[WARMUP:])) for name, t in times.items()}
  print(f'heart job, median round of {WARMUP + 1}..{_ROUNDS.value}:')
  print(f'{"implementation":42s} {"round ms":>9s} {"/ its XLA ref":>14s}')
  for name, seconds in medians.items():
    base = medians[reference_of.get(name, name)]
    print(f'{name:42s} {seconds * 1e3:9.2f} {seconds / base:14.2f}')


if __name__ == '__main__':
  app.run(main)
