r"""Steady-round time of the pipeline vs plain-TensorFlow references doing the same arithmetic.

  uv run python -m benchmarks.round_overhead [--job=heart|cnn] [--rounds=30]

A job (`benchmarks/jobs.py`: heart, 4 hospitals of 199/172/30/85 rows, logistic
regression, 100 SGD steps of batch 4 per hospital per round; or cnn, small_cnn
on 4 synthetic shards of 512 28x28 images, 16 steps of batch 32), FedAvg
weighted by examples, run six or seven ways in one process on the same batches:

* tff_med: the learning process the main job builds (TFF, DATASET_ITERATOR loop),
  its worker reading each hospital's shard from the files tff_med keeps for it
  (`tff_med/clients/resident.py`): a round sends a path and a seed per hospital;
* tff_med, datasets shipped: the same process handed `tf.data` pipelines built
  in this process each round (tff_med before the shards stayed with the worker);
* TFF default: `build_weighted_fed_avg` with TFF's default DATASET_REDUCE loop;
* tf.data + GradientTape: plain TF, one `tf.function` per client that loops
  over its dataset (GradientTape SGD steps), then the weighted mean in Python;
* fused: the whole round (all clients' steps and the mean) in one `tf.function`;
* fused + XLA: the same, the training and mean compiled with `jit_compile=True`
  (each client's batches read into one tensor first, in the same graph);
* tff_med's fused engine (`runtime.engine='fused'`, `tff_med/learning/fused.py`): TFF's
  model, optimizers and checks with each hospital's round compiled by XLA, plus
  the training metrics TFF reports; dense models only (not run on cnn).

Rounds are interleaved (round r of every implementation, then round r + 1), so
machine noise hits all alike. Prints the median steady round of each, its ratio
to the tf.data + GradientTape reference, and the largest weight difference from
tff_med after the same rounds.
"""

import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_federated as tff  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import jobs  # noqa: E402
from tff_med import errors
from tff_med.learning import algorithms, logits, metrics

_ROUNDS = flags.DEFINE_integer('rounds', 30, 'Rounds per implementation (first 5 are warm-up).')
_JOB = flags.DEFINE_enum('job', 'heart', list(jobs.JOBS), 'heart (overhead-bound) or cnn.')
WARMUP = 5


# Each implementation is a pair (step(round_num), final_weights()).


def _tff(process, datasets_fn):
  state = [process.initialize()]

  def step(r):
    state[0] = process.next(state[0], datasets_fn(r)).state

  return step, lambda: list(process.get_model_weights(state[0]).trainable)


def _plain(task, datasets_fn, lr, fused):
  model = logits.logits_model(task.keras_model(), 2)  # The loss takes logits, as in TFF's.
  loss_fn = metrics.loss_fn(2)
  weights = model.trainable_variables
  traces = []

  def sgd_step(x, y):
    with tf.GradientTape() as tape:
      loss = loss_fn(y, model(x, training=True))
    for w, g in zip(weights, tape.gradient(loss, weights), strict=True):
      w.assign_sub(lr * g)
    return tf.cast(tf.shape(x)[0], tf.float32)

  def local(dataset):
    start = [tf.identity(w) for w in weights]
    n = tf.constant(0.0)
    # `iter()` makes autograph emit a while-loop over the iterator, as TFF's
    # DATASET_ITERATOR loop does; a bare `for x in dataset` becomes a
    # `dataset.reduce`, whose per-element function call is far slower.
    for x, y in iter(dataset):
      n += sgd_step(x, y)
    delta = [w - s for w, s in zip(weights, start, strict=True)]
    for w, s in zip(weights, start, strict=True):
      w.assign(s)
    return delta, n

  if not fused:
    local = tf.function(local)  # One graph per client call, as TFF_NOTES's reference.

  def round_fn(datasets):
    traces.append(1)
    deltas, counts = zip(*[local(d) for d in datasets], strict=True)
    total = tf.add_n(list(counts))
    for i, w in enumerate(weights):
      w.assign_add(tf.add_n([d[i] * c for d, c in zip(deltas, counts, strict=True)]) / total)

  if fused:
    round_fn = tf.function(round_fn)

  def final_weights():
    if fused and len(traces) > 2:
      print(f'note: the fused round was traced {len(traces)} times')
    return [w.numpy() for w in weights]

  return lambda r: round_fn(datasets_fn(r)), final_weights


def _plain_xla(task, datasets_fn, lr, steps, unroll=True):
  # `unroll=False` loops over the steps in the graph: an MLP with dropout unrolled over
  # 100 steps took minutes and 8 GB to compile (2026-12-05).
  model = logits.logits_model(task.keras_model(), 2)  # The loss takes logits, as in TFF's.
  loss_fn = metrics.loss_fn(2)
  weights = model.trainable_variables

  # XLA cannot compile dataset iteration: an outer graph reads each client's
  # `steps` batches into one tensor, the XLA-compiled inner function trains.
  @tf.function(jit_compile=True)
  def train_and_average(xs, ys):
    deltas = []
    for x_steps, y_steps in zip(xs, ys, strict=True):
      start = [tf.identity(w) for w in weights]
      for k in range(steps) if unroll else tf.range(steps):
        with tf.GradientTape() as tape:
          loss = loss_fn(y_steps[k], model(x_steps[k], training=True))
        for w, g in zip(weights, tape.gradient(loss, weights), strict=True):
          w.assign_sub(lr * g)
      deltas.append([w - s for w, s in zip(weights, start, strict=True)])
      for w, s in zip(weights, start, strict=True):
        w.assign(s)
    counts = [tf.cast(tf.size(y), tf.float32) for y in ys]
    total = tf.add_n(counts)
    for i, w in enumerate(weights):
      w.assign_add(tf.add_n([d[i] * c for d, c in zip(deltas, counts, strict=True)]) / total)

  @tf.function
  def round_fn(datasets):
    batches = [d.batch(steps).get_single_element() for d in datasets]
    train_and_average([x for x, _ in batches], [y for _, y in batches])

  return lambda r: round_fn(datasets_fn(r)), lambda: [w.numpy() for w in weights]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  tf.get_logger().setLevel('ERROR')
  rounds = _ROUNDS.value
  with jobs.loaded(_JOB.value) as (task, config, kept):
    datasets_fn = jobs.datasets_fn(task, config)

    lr = config.algorithm.client_learning_rate
    implementations = {
      'tff_med (TFF, DATASET_ITERATOR)': _tff(*jobs.resident_process(task, config, kept)),
      'tff_med, datasets shipped': _tff(
        algorithms.build_learning_process(task.model_fn(), config.algorithm, 4), datasets_fn
      ),
      'TFF default (DATASET_REDUCE)': _tff(
        tff.learning.algorithms.build_weighted_fed_avg(
          task.model_fn(),
          tff.learning.optimizers.build_sgdm(lr),
          tff.learning.optimizers.build_sgdm(1.0),
        ),
        datasets_fn,
      ),
      'tf.data + GradientTape': _plain(task, datasets_fn, lr, fused=False),
      'fused tf.function': _plain(task, datasets_fn, lr, fused=True),
      'fused tf.function + XLA': _plain_xla(task, datasets_fn, lr, config.data.local_steps),
    }
    try:
      implementations['tff_med, fused engine (XLA)'] = _tff(*jobs.fused_process(task, config))
    except errors.ConfigError as e:
      print(f'fused engine not run: {e}')
    times = {name: [] for name in implementations}
    for r in range(1, rounds + 1):  # Interleaved: machine noise hits every implementation alike.
      for name, (step, _) in implementations.items():
        began = time.perf_counter()
        step(r)
        times[name].append(time.perf_counter() - began)
    results = {
      name: (float(np.median(times[name][WARMUP:])), final_weights())
      for name, (_, final_weights) in implementations.items()
    }
  reference = results['tf.data + GradientTape'][0]
  ours = results['tff_med (TFF, DATASET_ITERATOR)'][1]
  print(f'{_JOB.value} job, {rounds} rounds each (median of rounds {WARMUP + 1}..{rounds}):')
  print(
    f'{"implementation":34s} {"round ms":>9s} {"/ tf.data ref":>14s} {"max |w - tff_med|":>18s}'
  )
  for name, (seconds, weights) in results.items():
    diff = max(
      float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
      for a, b in zip(weights, ours, strict=True)
    )
    print(f'{name:34s} {seconds * 1e3:9.2f} {seconds / reference:14.2f} {diff:18.2e}')


if __name__ == '__main__':
  app.run(main)
