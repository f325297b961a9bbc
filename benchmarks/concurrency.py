r"""Round time of tff_med's learning process under different TFF worker concurrency.

  uv run python -m benchmarks.concurrency [--job=heart|cnn] [--settings=-1,1,2,4] [--rounds=20]

One TFF worker per `max_concurrent_computation_calls` setting, all alive at
once; each round is run on every worker in turn (interleaved, so machine noise
hits all settings alike), from the same state and the same batches. Prints the
median steady round of each setting and its ratio to TFF's default (-1, which
the worker reads as 4 x cores).
"""

import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_federated as tff  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import jobs  # noqa: E402
from tff_med import runtime
from tff_med.contexts import execution_context
from tff_med.learning import algorithms

_JOB = flags.DEFINE_enum('job', 'heart', list(jobs.JOBS), 'Which job.')
_SETTINGS = flags.DEFINE_list(
  'settings', ['-1', '1', '2', '4'], 'max_concurrent_computation_calls.'
)
_ROUNDS = flags.DEFINE_integer('rounds', 20, 'Rounds per setting (first 5 are warm-up).')
WARMUP = 5


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  tf.get_logger().setLevel('ERROR')
  settings = [int(s) for s in _SETTINGS.value]
  with runtime.local_runtime():
    task, config = jobs.JOBS[_JOB.value]()
  datasets_fn = jobs.datasets_fn(task, config)
  process = algorithms.build_learning_process(task.model_fn(), config.algorithm, 4)
  workers = {s: runtime.OwnedWorker(max_concurrent_computation_calls=s) for s in settings}
  contexts = {s: execution_context(w.stub) for s, w in workers.items()}
  stack = tff.framework.get_context_stack()
  times = {s: [] for s in settings}
  try:
    with stack.install(contexts[settings[0]]):
      initial = process.initialize()
    states = dict.fromkeys(settings, initial)
    for r in range(1, _ROUNDS.value + 1):
      datasets = datasets_fn(r)
      for s in settings:
        with stack.install(contexts[s]):
          began = time.perf_counter()
          states[s] = process.next(states[s], datasets).state
          times[s].append(time.perf_counter() - began)
  finally:
    for worker in workers.values():
      worker.stop()
  medians = {s: float(np.median(t[WARMUP:])) for s, t in times.items()}
  default = medians.get(-1)
  print(f'{_JOB.value} job on {os.cpu_count()} cores, {_ROUNDS.value} interleaved rounds:')
  print(f'{"max_concurrent_computation_calls":>33s} {"round ms":>9s} {"/ default":>10s}')
  for s, seconds in medians.items():
    ratio = f'{seconds / default:10.2f}' if default else f'{"":>10s}'
    print(f'{s:33d} {seconds * 1e3:9.1f} {ratio}')


if __name__ == '__main__':
  app.run(main)
