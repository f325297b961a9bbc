r"""Where a tff_med round's time goes, measured piece by piece in one run.

  uv run python -m benchmarks.round_breakdown [--job=heart|cnn] [--rounds=20]

Each piece is a separate call, timed as the median over rounds 6..N (each
round builds fresh datasets, as training does):

* build datasets: tff_med builds each hospital's shuffled, batched `tf.data`
  pipeline in Python (the plain-TF reference pays this too);
* serialize datasets: TFF turns each pipeline into a GraphDef for the worker;
* empty round: TFF broadcasts a scalar to the hospitals and averages it back
  (gRPC, executor and placement cost, no data);
* iterate on the worker: a TFF computation that only walks every hospital's
  batches (includes the two dataset pieces and the empty round's plumbing);
* the same, the worker reading the shards tff_med keeps for it
  (`tff_med/clients/resident.py`; no datasets built or serialized here);
* iterate in-process: the same walk in a `tf.function` in this process;
* full round: `process.next`, with datasets shipped and with resident shards
  (what `experiments.train` runs).
"""

import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_federated as tff  # noqa: E402
from absl import app, flags  # noqa: E402
from tensorflow_federated.python.core.impl.executors import value_serialization  # noqa: E402

from benchmarks import jobs  # noqa: E402
from tff_med.learning import algorithms

_JOB = flags.DEFINE_enum('job', 'heart', list(jobs.JOBS), 'Which job.')
_ROUNDS = flags.DEFINE_integer('rounds', 20, 'Rounds per piece (the first 5 are warm-up).')
WARMUP = 5


def _walk(dataset):
  total = tf.constant(0.0)
  for x, _ in iter(dataset):
    total += tf.reduce_sum(x)
  return total


def _computations(sequence_type):
  @tff.tensorflow.computation(sequence_type)
  def walk(dataset):
    return tf.function(_walk)(dataset)

  @tff.tensorflow.computation(np.float32)
  def identity(x):
    return tf.identity(x)

  @tff.federated_computation(tff.FederatedType(np.float32, tff.SERVER))
  def empty_round(x):
    return tff.federated_mean(tff.federated_map(identity, tff.federated_broadcast(x)))

  @tff.federated_computation(tff.FederatedType(sequence_type, tff.CLIENTS))
  def walk_all(datasets):
    return tff.federated_sum(tff.federated_map(walk, datasets))

  return empty_round, walk_all


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  tf.get_logger().setLevel('ERROR')
  rounds = _ROUNDS.value
  with jobs.loaded(_JOB.value) as (task, config, kept):
    datasets_fn = jobs.datasets_fn(task, config)

    sequence_type = tff.SequenceType(tff.types.tensorflow_to_type(datasets_fn(0)[0].element_spec))
    empty_round, walk_all = _computations(sequence_type)
    walk_here = tf.function(_walk)
    process = algorithms.build_learning_process(task.model_fn(), config.algorithm, 4)
    state = [process.initialize()]

    walk_resident = tff.simulation.compose_dataset_computation_with_computation(
      kept.train_computation(jobs.plan(config)), walk_all
    )
    resident_process, inputs_fn = jobs.resident_process(task, config, kept)
    resident_state = [resident_process.initialize()]

    def full_round(r):
      state[0] = process.next(state[0], datasets_fn(r)).state

    def full_round_resident(r):
      resident_state[0] = resident_process.next(resident_state[0], inputs_fn(r)).state

    pieces = {
      'build datasets (tff_med, Python)': datasets_fn,
      'serialize datasets (TFF, Python)': lambda r: [
        value_serialization.serialize_value(d, sequence_type) for d in datasets_fn(r)
      ],
      'empty round (TFF runtime)': lambda r: empty_round(1.0),
      'iterate on the worker (TFF)': lambda r: walk_all(datasets_fn(r)),
      'iterate on the worker, resident shards': lambda r: walk_resident(inputs_fn(r)),
      'iterate in-process (plain TF)': lambda r: [walk_here(d) for d in datasets_fn(r)],
      'full round, datasets shipped': full_round,
      'full round, resident shards (tff_med)': full_round_resident,
    }
    medians = {}
    for name, fn in pieces.items():
      times = []
      for r in range(1, rounds + 1):
        began = time.perf_counter()
        fn(r)
        times.append(time.perf_counter() - began)
      medians[name] = float(np.median(times[WARMUP:]))
  print(f'{_JOB.value} job, {len(task.data.hospitals)} hospitals, median of rounds 6..{rounds}:')
  for name, seconds in medians.items():
    print(f'{name:40s} {seconds * 1e3:8.1f} ms')


if __name__ == '__main__':
  app.run(main)
