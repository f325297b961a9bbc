r"""Where a hospital's fixed cost per round goes: building its pipeline vs TFF's execution.

  uv run python -m benchmarks.client_cost [--hospitals=64] [--rounds=6]

FedAvg over `hospitals` clients of 64 synthetic rows (4 batches of 16),
logistic regression. Each round times: building the clients' `tf.data`
pipelines in Python; `process.next` on them; and `process.next` with one
dataset object passed for every client (so dataset serialization is not
repeated). Prints medians over rounds 2..N and the cost per hospital.
"""

import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_federated as tff  # noqa: E402
from absl import app, flags  # noqa: E402

from tff_med import runtime
from tff_med.learning import models, task

_HOSPITALS = flags.DEFINE_integer('hospitals', 64, 'Clients per round.')
_ROUNDS = flags.DEFINE_integer('rounds', 6, 'Rounds (the first is warm-up).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  tf.get_logger().setLevel('ERROR')
  n = _HOSPITALS.value
  spec = (tf.TensorSpec([None, 13], tf.float32), tf.TensorSpec([None, 1], tf.float32))

  def model_fn():
    return task.variable_model(models.logistic_regression((13,), 2), spec, 2, with_metrics=False)

  process = tff.learning.algorithms.build_weighted_fed_avg(
    model_fn,
    tff.learning.optimizers.build_sgdm(0.01),
    loop_implementation=tff.learning.LoopImplementation.DATASET_ITERATOR,
  )
  rng = np.random.RandomState(0)
  x = rng.normal(size=(64, 13)).astype(np.float32)
  y = (rng.uniform(size=(64, 1)) > 0.5).astype(np.float32)
  times = {'build pipelines': [], 'next': [], 'next, one dataset reused': []}
  with runtime.local_runtime():
    state = process.initialize()
    for r in range(_ROUNDS.value):
      began = time.perf_counter()
      datasets = [
        tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=r * 1000 + i).batch(16)
        for i in range(n)
      ]
      built = time.perf_counter()
      state = process.next(state, datasets).state
      done = time.perf_counter()
      process.next(state, [datasets[0]] * n)
      reused = time.perf_counter()
      times['build pipelines'].append(built - began)
      times['next'].append(done - built)
      times['next, one dataset reused'].append(reused - done)
  print(f'{n} hospitals, median of rounds 2..{_ROUNDS.value}:')
  for name, values in times.items():
    median = float(np.median(values[1:]))
    print(f'{name:28s} {median * 1e3:8.1f} ms  {median / n * 1e3:6.2f} ms per hospital')


if __name__ == '__main__':
  app.run(main)
