"""Non-federated baselines in plain Keras: one hospital alone, and pooled data.

Pooled training is the upper bound that privacy forbids in practice: it needs
every hospital's records in one place. Both baselines use the same model
builder, optimizer family, batch size and number of samples as the federated
runs, so the comparison is about where the data is, not how much is seen.
"""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

from tff_med.clients.client_data import shuffle_seed
from tff_med.learning import fused_support, logits, metrics
from tff_med.learning.build_cache import BuildCache

_CHUNK_BYTES = 64 * 2**20  # Batches stacked per call of the training loop.
_TRAINERS = BuildCache()
KERAS_OPTIMIZERS = {
  'sgd': lambda lr, momentum: tf.keras.optimizers.SGD(lr, momentum=momentum or 0.0),
  'adam': lambda lr, momentum: tf.keras.optimizers.Adam(lr),
  'adagrad': lambda lr, momentum: tf.keras.optimizers.Adagrad(lr),
  'rmsprop': lambda lr, momentum: tf.keras.optimizers.RMSprop(lr),
}


def train_steps(
  model: tf.keras.Model,
  x: np.ndarray,
  y: np.ndarray,
  *,
  steps: int,
  batch_size: int,
  optimizer: str,
  learning_rate: float,
  momentum: float = 0.0,
  num_classes: int,
  seed: int,
) -> tf.keras.Model:
  """Trains `model` in place for `steps` batches drawn by seeded reshuffled epochs.

  The loss is `metrics.loss_fn`'s on the model's logits, as in the federated runs. A
  model of dense layers trains under XLA (`fused_support.dense_only`), whose rounding
  differs from TensorFlow's kernels in the last bits (the studies' tables do not change).

  Returns:
    `model`, trained.

  Raises:
    ValueError: `optimizer` has no Keras counterpart here.
  """
  if optimizer not in KERAS_OPTIMIZERS:
    raise ValueError(f'no Keras optimizer for {optimizer!r}; valid: {sorted(KERAS_OPTIMIZERS)}')
  if y.ndim == 2:  # Survival: (time, event) rows, as the Cox loss takes them.
    labels = y.astype(np.float32)
  else:
    labels = y.astype(np.float32)[:, None] if model.output_shape[-1] == 1 else y.astype(np.int32)
  # The batches come stacked, a chunk of steps at a time, into a loop over tensors: the same
  # batches and the same graph per step as iterating the dataset inside the function (the
  # weights are bit for bit the same), 2.5x faster without the iterator in every step.
  row_bytes = batch_size * (x[0].nbytes + labels[0].nbytes)
  chunk = max(1, _CHUNK_BYTES // row_bytes)
  data = (
    tf.data.Dataset.from_tensor_slices((x, labels))
    .shuffle(len(x), seed=shuffle_seed(seed, 0, 0), reshuffle_each_iteration=True)
    .repeat()
    .batch(batch_size)
    .take(steps)
    .batch(chunk)
  )
  signature = tuple(tf.TensorSpec([None, *s.shape[1:]], s.dtype) for s in data.element_spec)
  args = (model, optimizer, learning_rate, momentum, num_classes, signature)
  if any(isinstance(layer, tf.keras.__internal__.layers.BaseRandomLayer) for layer in model.layers):
    trainer = _Trainer(*args)  # Its random ops' state would carry over from call to call.
  else:
    key = (_architecture(model), optimizer, learning_rate, momentum, num_classes, signature)
    trainer = _TRAINERS.get(key, lambda: _Trainer(*args))
  trainer.train(model, data)
  return model


def _architecture(model: tf.keras.Model) -> str:
  """The model's config without its initializers (weights are loaded), layers by position."""

  def strip(value):
    if isinstance(value, dict):
      return {k: strip(v) for k, v in value.items() if not k.endswith('_initializer')}
    return [strip(v) for v in value] if isinstance(value, list | tuple) else value

  text = json.dumps(strip(model.get_config()), sort_keys=True, default=str)
  for i, layer in enumerate([model, *model.layers]):
    text = text.replace(json.dumps(layer.name), f'"#{i}"')
  return text


class _Trainer:
  """`train_steps`'s loop for one architecture and optimizer, traced (and compiled) once.

  It trains a copy of the model with an optimizer of its own: each call loads the
  model's weights and the optimizer's initial state, so it trains as a fresh optimizer
  on the model would, and writes the weights back. Tracing and compiling the loop
  anew for each of a study's baselines took about a third of the comparison study
  (cProfile, as `benchmarks/README.md` describes). Ours: Keras keeps no such cache.
  """

  def __init__(self, model, optimizer, learning_rate, momentum, num_classes, signature):
    self._model = tf.keras.models.clone_model(model)
    variables = self._model.trainable_variables
    self._optimizer = opt = KERAS_OPTIMIZERS[optimizer](learning_rate, momentum)
    opt.build(variables)
    self._initial = [v.numpy() for v in opt.variables]
    loss = metrics.loss_fn(num_classes)
    logits_model = logits.logits_model(self._model, num_classes)

    @tf.function(input_signature=signature, jit_compile=fused_support.dense_only(model))
    def run(features, targets):
      for k in tf.range(tf.shape(features)[0]):
        with tf.GradientTape() as tape:
          value = loss(targets[k], logits_model(features[k], training=True))
        opt.apply_gradients(zip(tape.gradient(value, variables), variables, strict=True))

    self._run = run

  def train(self, model: tf.keras.Model, batches: tf.data.Dataset) -> None:
    """Trains `model`'s weights on `batches` (chunks of stacked steps), in place."""
    self._model.set_weights(model.get_weights())
    for variable, value in zip(self._optimizer.variables, self._initial, strict=True):
      variable.assign(value)
    for features, targets in batches:
      self._run(features, targets)
    model.set_weights(self._model.get_weights())


def predict_risk(model: tf.keras.Model, x: np.ndarray) -> np.ndarray:
  """Probability of the positive class (a survival model's risk score) for each row.

  Empty input gives an empty array.
  """
  if not len(x):
    return np.zeros(0)
  # Keras's `predict` graph, in its batches of 1024, without `predict`'s per-call set-up
  # (data adapter, callbacks: about 30 ms a call, a tenth of a study).
  batches = [model.predict_on_batch(x[i : i + 1024]) for i in range(0, len(x), 1024)]
  return np.concatenate(batches)[:, -1]
