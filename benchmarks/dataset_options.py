r"""tff_med's lean tf.data options vs tf.data's defaults, interleaved round by round.

  uv run python -m benchmarks.dataset_options [--job=heart|cnn] [--rounds=40]

Two copies of tff_med's learning process train side by side on one worker:
one on the training pipelines as tff_med builds them (tf.data's default
rewrites off), one on the same pipelines with the defaults switched back on.
Rounds alternate, so machine noise hits both alike. Prints the median steady
round of each and the largest weight difference between them at the end (the
batches are the same, so it should be 0).
"""

import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import jobs  # noqa: E402
from tff_med import runtime
from tff_med.learning import algorithms

_JOB = flags.DEFINE_enum('job', 'heart', list(jobs.JOBS), 'Which job.')
_ROUNDS = flags.DEFINE_integer('rounds', 40, 'Rounds (the first 5 are warm-up).')
WARMUP = 5


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  tf.get_logger().setLevel('ERROR')
  defaults = tf.data.Options()
  defaults.experimental_optimization.apply_default_optimizations = True
  with runtime.local_runtime():
    task, config = jobs.JOBS[_JOB.value]()
    datasets_fn = jobs.datasets_fn(task, config)
    process = algorithms.build_learning_process(task.model_fn(), config.algorithm, 4)
    variants = {
      'tff_med (defaults off)': lambda datasets: datasets,
      "tf.data's defaults": lambda datasets: [d.with_options(defaults) for d in datasets],
    }
    states = dict.fromkeys(variants, process.initialize())
    times = {name: [] for name in variants}
    for r in range(1, _ROUNDS.value + 1):
      for name, wrap in variants.items():
        datasets = wrap(datasets_fn(r))
        began = time.perf_counter()
        states[name] = process.next(states[name], datasets).state
        times[name].append(time.perf_counter() - began)
    weights = [process.get_model_weights(s).trainable for s in states.values()]
  print(f'{_JOB.value} job, {_ROUNDS.value} interleaved rounds:')
  for name, t in times.items():
    print(f'{name:24s} {np.median(t[WARMUP:]) * 1e3:8.1f} ms')
  diff = max(float(np.max(np.abs(a - b))) for a, b in zip(*weights, strict=True))
  print(f'max weight difference: {diff:.1e}')


if __name__ == '__main__':
  app.run(main)
