r"""The fused engine's round, per algorithm, against the XLA-compiled plain-TensorFlow reference.

  uv run python -m benchmarks.fused_overhead [--rounds=30]   (round_overhead's flags)

On the heart job, times a steady round (median of rounds 6..N, the implementations
taking turns every round) of the fused engine for every case of
`benchmarks.fused_equality` and of `round_overhead`'s 'fused tf.function + XLA'
reference: FedAvg's local SGD steps and weighted mean, compiled by XLA, without
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
from tff_med.learning.privacy import budget


def _fused(task, base_config, change):
  config = base_config.copy_and_resolve_references()
  change = dict(change)
  config.privacy.update(change.pop('privacy', {}))
  config.algorithm.update(change)
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
    reference, _ = _plain_xla(
      task, datasets_fn, config.algorithm.client_learning_rate, config.data.local_steps
    )
    steps = {'XLA reference (FedAvg)': reference}
    steps.update({name: _fused(task, config, change) for name, change in CASES.items()})
    times = {name: [] for name in steps}
    for r in range(1, _ROUNDS.value + 1):
      for name, step in steps.items():
        began = time.perf_counter()
        step(r)
        times[name].append(time.perf_counter() - began)
  medians = {name: float(np.median(t[WARMUP:])) for name, t in times.items()}
  base = medians['XLA reference (FedAvg)']
  print(f'heart job, median round of {WARMUP + 1}..{_ROUNDS.value}:')
  print(f'{"implementation":24s} {"round ms":>9s} {"/ XLA ref":>10s}')
  for name, seconds in medians.items():
    print(f'{name:24s} {seconds * 1e3:9.2f} {seconds / base:10.2f}')


if __name__ == '__main__':
  app.run(main)
