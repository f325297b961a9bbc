"""Non-federated baselines in plain Keras: one hospital alone, and pooled data.

Pooled training is the upper bound that privacy forbids in practice: it needs
every hospital's records in one place. Both baselines use the same model
builder, optimizer family, batch size and number of samples as the federated
runs, so the comparison is about where the data is, not how much is seen.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tff_med.clients.client_data import shuffle_seed
from tff_med.learning import fused_support, logits, metrics

_CHUNK_BYTES = 64 * 2**20  # Batches stacked per call of the training loop.
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
  opt = KERAS_OPTIMIZERS[optimizer](learning_rate, momentum)
  loss = metrics.loss_fn(num_classes)
  logits_model = logits.logits_model(model, num_classes)
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

  @tf.function(
    input_signature=[tf.TensorSpec([None, *s.shape[1:]], s.dtype) for s in data.element_spec],
    jit_compile=fused_support.dense_only(model),
  )
  def run(features, targets):
    for k in tf.range(tf.shape(features)[0]):
      with tf.GradientTape() as tape:
        value = loss(targets[k], logits_model(features[k], training=True))
      opt.apply_gradients(
        zip(tape.gradient(value, model.trainable_variables), model.trainable_variables, strict=True)
      )

  for features, targets in data:
    run(features, targets)
  return model


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
