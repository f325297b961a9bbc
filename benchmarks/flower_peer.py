r"""tff_med vs Flower's simulation engine on the same job, side by side in one run.

  uv run python -m benchmarks.flower_peer [--job=heart|cnn] [--rounds=20]

Exports the job (Keras model JSON and initial weights, each hospital's
standardized arrays, the local training plan) to a temporary file, runs Flower
on it in its own environment (`benchmarks/peers/flower`, synced on first use),
then runs tff_med's learning process for the same rounds on the same batches in
this process. Prints each one's median steady round (rounds 6 onwards), Flower
/ tff_med, the total wall time (Flower's includes starting Ray; tff_med's
building the process and starting its worker), the largest final weight
difference, and each one's mean test accuracy over the hospitals from its
final weights. The weights are close, not equal: Keras `fit` (what Flower's
Keras clients call) visits the batches in another order than iterating the
same dataset does.
"""

import os
import subprocess
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import jobs  # noqa: E402
from tff_med import runtime  # noqa: E402
from tff_med.clients import client_data, resident

_JOB = flags.DEFINE_enum('job', 'heart', list(jobs.JOBS), 'Which job.')
_ROUNDS = flags.DEFINE_integer('rounds', 20, 'Rounds (the first 5 are warm-up).')
WARMUP = 5
PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'peers', 'flower')


def _export(path, task, config, rounds) -> int:
  """Writes the job file; returns the number of weight arrays in the model."""
  model = task.keras_model()
  plan = client_data.LocalTraining(config.data.batch_size, local_steps=config.data.local_steps)
  sizes = [len(shard.y_train) for shard in task.data.shards]
  # Each round's rows, as tff_med's datasets take them (the peer has no tff_med).
  orders = np.stack(
    [
      client_data.round_indices(
        sizes, [client_data.shuffle_seed(0, r, i) for i in range(len(sizes))], plan
      )
      for r in range(1, rounds + 1)
    ]
  )
  arrays = {}
  for i, shard in enumerate(task.data.shards):
    arrays[f'x_train_{i}'] = shard.x_train
    arrays[f'y_train_{i}'] = shard.y_train.astype(np.float32)[:, None]
    arrays[f'order_{i}'] = orders[:, i].reshape(rounds, -1)
  weights = model.get_weights()
  np.savez(
    path,
    model_json=model.to_json(),
    num_weights=len(weights),
    num_hospitals=len(task.data.shards),
    batch_size=config.data.batch_size,
    local_steps=config.data.local_steps,
    learning_rate=config.algorithm.client_learning_rate,
    rounds=rounds,
    **{f'w{i}': w for i, w in enumerate(weights)},
    **arrays,
  )
  return len(weights)


def _flower(job_path, out_path):
  env = {k: v for k, v in os.environ.items() if k != 'VIRTUAL_ENV'}
  subprocess.run(
    ['uv', 'run', '--project', PEER, '--locked', 'python', os.path.join(PEER, 'run.py')]
    + [f'--job={job_path}', f'--out={out_path}'],
    check=True,
    env=env,
  )
  with np.load(out_path) as f:
    return {k: f[k] for k in f.files}


def _tff_med(task, config, rounds):
  began = time.perf_counter()
  with resident.resident_shards(task.data) as kept:  # As `experiments.train` runs it.
    process, inputs_fn = jobs.resident_process(task, config, kept)
    state = process.initialize()
    times = []
    for r in range(1, rounds + 1):
      round_began = time.perf_counter()
      state = process.next(state, inputs_fn(r)).state
      times.append(time.perf_counter() - round_began)
    weights = [np.asarray(w) for w in process.get_model_weights(state).trainable]
  return np.asarray(times), time.perf_counter() - began, weights


def _mean_accuracy(task, weights):
  model = task.keras_model()
  model.set_weights(weights)
  accuracies = []
  for shard in task.data.shards:
    predicted = model(shard.x_test, training=False).numpy()[:, 0] > 0.5
    accuracies.append(float(np.mean(predicted == (shard.y_test == 1))))
  return float(np.mean(accuracies))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  tf.get_logger().setLevel('ERROR')
  rounds = _ROUNDS.value
  with runtime.local_runtime():
    task, config = jobs.JOBS[_JOB.value]()
  with tempfile.TemporaryDirectory() as tmp:
    job_path, out_path = os.path.join(tmp, 'job.npz'), os.path.join(tmp, 'out.npz')
    num_weights = _export(job_path, task, config, rounds)
    flower = _flower(job_path, out_path)
  flower_weights = [flower[f'w{i}'] for i in range(num_weights)]
  with runtime.local_runtime():
    ours_times, ours_total, ours_weights = _tff_med(task, config, rounds)
  flower_round = float(np.median(flower['round_seconds'][WARMUP:]))
  ours_round = float(np.median(ours_times[WARMUP:]))
  diff = max(
    float(np.max(np.abs(a - b))) for a, b in zip(flower_weights, ours_weights, strict=True)
  )
  print(f'{_JOB.value} job, {rounds} rounds (median of rounds {WARMUP + 1}..{rounds}):')
  print(f'{"":28s} {"round ms":>9s} {"total s":>8s} {"mean accuracy":>14s}')
  rows = [
    (f'Flower {flower["flower_version"]} simulation', flower_round, flower['total_seconds']),
    ('tff_med', ours_round, ours_total),
  ]
  for (name, seconds, total), weights in zip(rows, [flower_weights, ours_weights], strict=True):
    accuracy = _mean_accuracy(task, weights)
    print(f'{name:28s} {seconds * 1e3:9.1f} {float(total):8.1f} {accuracy:14.3f}')
  print(f'Flower / tff_med per round: {flower_round / ours_round:.2f}')
  print(f'max |w_flower - w_tff_med| after {rounds} rounds: {diff:.1e}')


if __name__ == '__main__':
  app.run(main)
