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
  loss: tf.keras.losses.Loss,
  seed: int,
) -> tf.keras.Model:
  """Trains `model` in place for `steps` batches drawn by seeded reshuffled epochs.

  Returns:
    `model`, trained.

  Raises:
    ValueError: `optimizer` has no Keras counterpart here.
  """
  if optimizer not in KERAS_OPTIMIZERS:
    raise ValueError(f'no Keras optimizer for {optimizer!r}; valid: {sorted(KERAS_OPTIMIZERS)}')
  opt = KERAS_OPTIMIZERS[optimizer](learning_rate, momentum)
  if y.ndim == 2:  # Survival: (time, event) rows, as the Cox loss takes them.
    labels = y.astype(np.float32)
  else:
    labels = y.astype(np.float32)[:, None] if model.output_shape[-1] == 1 else y.astype(np.int32)
  data = (
    tf.data.Dataset.from_tensor_slices((x, labels))
    .shuffle(len(x), seed=shuffle_seed(seed, 0, 0), reshuffle_each_iteration=True)
    .repeat()
    .batch(batch_size)
    .take(steps)
  )

  @tf.function
  def run(dataset):
    for features, target in dataset:
      with tf.GradientTape() as tape:
        value = loss(target, model(features, training=True))
      opt.apply_gradients(
        zip(tape.gradient(value, model.trainable_variables), model.trainable_variables, strict=True)
      )

  run(data)
  return model


def predict_risk(model: tf.keras.Model, x: np.ndarray) -> np.ndarray:
  """Probability of the positive class (a survival model's risk score) for each row.

  Empty input gives an empty array.
  """
  if not len(x):
    return np.zeros(0)
  return model.predict(x, verbose=0, batch_size=1024)[:, -1]
