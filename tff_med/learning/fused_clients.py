"""A fused round's client work: every hospital's local training in one XLA call.

TFF's `model_delta_client_work` with `DATASET_ITERATOR` (FedProx's proximal
variant, or tff_med's DP-SGD client work with a clipping norm), for each of a
round's hospitals in turn, their batches stacked (`fused_run.RoundInputs`), so
a round costs its steps, not a call per hospital (`benchmarks/scale.py`). What
it computes depends on the model, the client optimizer, the proximal strength,
the local steps and the clipping norm only: a study's runs that differ in the
server's optimizer, the aggregator or the attack share one (`shared`), and
XLA compiles it once for them. Ours, as the rest of the fused engine (see `fused`).
"""

from __future__ import annotations

import collections

import tensorflow as tf

# TFF's own check, the one its client work applies; not exported.
from tensorflow_federated.python.learning.tensor_utils import zero_all_if_any_non_finite

from tff_med.learning import algorithms, fused_support, metrics, seeded_dropout
from tff_med.learning import task as task_lib
from tff_med.learning.build_cache import BuildCache
from tff_med.learning.privacy import dp_sgd

_SHARED = BuildCache()


def key(task, keras_model, config, local_steps: int, l2_norm_clip=None) -> tuple:
  """What a `FusedClients` of these arguments computes depends on, and only that.

  The model's architecture and dropout seeds (compiled into the round), the
  client optimizer, FedProx's strength, the local steps and the clipping norm;
  `keras_model` is the task's model, built by the caller.
  """
  return (
    task.architecture(),
    seeded_dropout.seeds(keras_model),
    (config.client_optimizer, config.client_learning_rate, config.client_momentum),
    config.proximal_strength if config.name == 'fedprox' else None,
    local_steps,
    l2_norm_clip,
  )


def shared(clients_key: tuple, task, config, local_steps: int, l2_norm_clip=None):
  """The `FusedClients` of `clients_key` (`key`), built once for this process's runs."""
  return _SHARED.get(clients_key, lambda: FusedClients(task, config, local_steps, l2_norm_clip))


class FusedClients:
  """The local training of a round's hospitals, compiled once (`train`).

  Args:
    task: A `tff_med.task.Task`.
    config: The `algorithm` block of the experiment config (its client optimizer
      and, for FedProx, its proximal strength).
    local_steps: Batches each hospital trains on per round.
    l2_norm_clip: Patient-level DP-SGD's clipping norm, or None without DP.

  Raises:
    ConfigError: The model has layers other than dense ones (`fused_support.LAYERS`).
  """

  def __init__(self, task, config, local_steps: int, l2_norm_clip=None):
    keras_model = task.keras_model()
    fused_support.check_model(keras_model)
    num_classes = task.data.num_classes
    # Loss, num_examples and num_batches as TFF counts them, updated per step.
    self._model = task_lib.variable_model(
      keras_model, task.input_spec(), num_classes, with_metrics=False
    )
    self._optimizer = algorithms.client_optimizer(config)
    self._proximal = float(config.proximal_strength) if config.name == 'fedprox' else 0.0
    self._per_example_loss = metrics.loss_fn(num_classes, reduction='none')
    self._output_shape = keras_model.output_shape[1:]
    self.steps = local_steps
    self.clip = l2_norm_clip
    self.specs = tuple(tf.TensorSpec(v.shape, v.dtype) for v in self._model.trainable_variables)
    # (initial weights, xs, ys, drawn noise) -> per hospital [hospital, ...]: the update,
    # TFF's non-finite flag, examples, predictions [step, example, ...], unfinalized metrics.
    self.train = tf.function(self._clients_round, jit_compile=True)

  def noise(self, seeds, noises, count: int):
    """DP-SGD's noise for `count` hospitals, per variable [hospital, local step, ...]."""
    if self.clip is None:
      return [tf.zeros([count, self.steps, 0]) for _ in self.specs]
    noise = [self._dp_noise(seeds[h], noises[h]) for h in range(count)]
    return [tf.stack(parts) for parts in zip(*noise, strict=True)]

  def _dp_noise(self, seed, noise):
    # dp_sgd's noise, drawn from its seeds outside XLA (whose normal sampler differs from
    # TensorFlow's kernel): [local step, ...] per variable.
    return [
      tf.stack(
        [
          tf.random.stateless_normal(
            spec.shape,
            seed=tf.random.experimental.stateless_fold_in(
              seed, tf.constant(k * 1000 + i, tf.int64)
            ),
            stddev=noise * self.clip,
          )
          for k in range(self.steps)
        ]
      )
      for i, spec in enumerate(self.specs)
    ]

  def _dp_gradients(self, x, y, drawn):
    # dp_sgd's step: per-example gradients clipped, summed, noised, averaged.
    model = self._model
    with tf.GradientTape() as tape:
      predicted = model.predict_on_batch(x, training=True)
      losses = self._per_example_loss(y, predicted)
    summed = dp_sgd.clip_and_sum(tape.jacobian(losses, model.trainable_variables), self.clip)
    size = tf.shape(losses)[0]
    noisy = [
      (total + d) / tf.cast(size, tf.float32) for total, d in zip(summed, drawn, strict=True)
    ]
    return noisy, tf.cast(size, tf.int64), predicted

  def _client_round(self, initial, x, y, drawn):
    # TFF's model_delta_client_work with DATASET_ITERATOR, over stacked batches (or
    # tff_med's DP-SGD client work, with a clipping norm).
    model = self._model
    for variable, value in zip(model.trainable_variables, initial, strict=True):
      variable.assign(value)
    model.reset_metrics()
    optimizer_state = self._optimizer.initialize(self.specs)
    num_examples = tf.constant(0, tf.int64)
    predictions = tf.TensorArray(tf.float32, size=self.steps)
    for k in tf.range(self.steps):
      if self.clip is not None:
        gradients, examples, predicted = self._dp_gradients(x[k], y[k], [d[k] for d in drawn])
      else:
        with tf.GradientTape() as tape:
          output = model.forward_pass((x[k], y[k]), training=True)
        gradients = tape.gradient(output.loss, model.trainable_variables)
        examples, predicted = tf.cast(output.num_examples, tf.int64), output.predictions
      if self._proximal > 0:  # TFF's FedProx term, as TFF writes it: strength * (initial - w).
        gradients = [
          g + self._proximal * (w0 - w)
          for g, w0, w in zip(gradients, initial, model.trainable_variables, strict=True)
        ]
      optimizer_state, updated = self._optimizer.next(
        optimizer_state, tuple(model.trainable_variables), tuple(gradients)
      )
      for variable, value in zip(model.trainable_variables, updated, strict=True):
        variable.assign(value)
      num_examples += examples
      predictions = predictions.write(k, predicted)
    update = [i - v for i, v in zip(initial, model.trainable_variables, strict=True)]
    update, non_finite = zero_all_if_any_non_finite(update)
    return update, non_finite, num_examples, predictions.stack(), self._unfinalized()

  def _clients_round(self, initial, xs, ys, drawn):
    # `_client_round` for each hospital in turn, its results stacked: [hospital, ...].
    count = tf.shape(xs)[0]
    prediction_shape = [self.steps, xs.shape[2], *self._output_shape]
    unfinalized = self._unfinalized()
    shapes = (
      list(self.specs),
      tf.TensorSpec([], tf.int32),  # TFF's non-finite flag.
      tf.TensorSpec([], tf.int64),
      tf.TensorSpec(prediction_shape, tf.float32),
      tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), unfinalized),
    )
    arrays = tf.nest.map_structure(
      lambda spec: tf.TensorArray(spec.dtype, size=count, element_shape=spec.shape), shapes
    )
    for h in tf.range(count):
      result = self._client_round(initial, xs[h], ys[h], [d[h] for d in drawn])
      arrays = tf.nest.map_structure(lambda a, t, h=h: a.write(h, t), arrays, result)
    return tf.nest.map_structure(lambda a: a.stack(), arrays)

  def _unfinalized(self):
    return collections.OrderedDict(
      (name, [tf.identity(v) for v in values])
      for name, values in self._model.report_local_unfinalized_metrics().items()
    )
