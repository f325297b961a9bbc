"""Keras model builders, a plain registry of name -> builder.

Builders know nothing of TFF: each returns an uncompiled `tf.keras.Model` whose
last layer outputs probabilities (sigmoid for two classes, softmax otherwise),
so the exported model predicts risks directly (training takes the logits behind
them: `logits`); for a survival study
(`num_classes` 1) it outputs one linear risk score, a log hazard ratio (the
linear model is then a Cox proportional-hazards model). Initializers are seeded, so a
seeded run starts from the same weights every time, and dropout is `SeededDropout`, so
it trains the same way every time, on TFF's engine and the fused one alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tff_med.errors import unknown_name_error
from tff_med.learning.seeded_dropout import SeededDropout


def _head(num_classes: int, seed: int) -> tf.keras.layers.Layer:
  units, activation = {1: (1, None), 2: (1, 'sigmoid')}.get(num_classes, (num_classes, 'softmax'))
  return tf.keras.layers.Dense(
    units,
    activation=activation,
    name='risk',
    kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed),
  )


def logistic_regression(
  input_shape: Sequence[int], num_classes: int, *, seed: int = 0, **unused
) -> tf.keras.Model:
  """A linear model (FLamby's Fed-Heart-Disease and, as a Cox model, Fed-TCGA-BRCA baselines)."""
  del unused
  inputs = tf.keras.Input(shape=tuple(input_shape), name='features')
  x = tf.keras.layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
  return tf.keras.Model(inputs, _head(num_classes, seed)(x), name='logistic_regression')


def mlp(
  input_shape: Sequence[int],
  num_classes: int,
  *,
  seed: int = 0,
  hidden_units: Sequence[int] = (64,),
  dropout: float = 0.0,
  **unused,
) -> tf.keras.Model:
  """A fully connected network with ReLU hidden layers and optional dropout."""
  del unused
  inputs = tf.keras.Input(shape=tuple(input_shape), name='features')
  x = tf.keras.layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
  for i, units in enumerate(hidden_units):
    x = tf.keras.layers.Dense(
      units,
      activation='relu',
      name=f'hidden_{i}',
      kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed + i + 1),
    )(x)
    if dropout:
      x = SeededDropout(dropout, seed=seed + i + 1, name=f'dropout_{i}')([x, inputs])
  return tf.keras.Model(inputs, _head(num_classes, seed)(x), name='mlp')


def small_cnn(
  input_shape: Sequence[int],
  num_classes: int,
  *,
  seed: int = 0,
  filters: Sequence[int] = (16, 32),
  dropout: float = 0.0,
  **unused,
) -> tf.keras.Model:
  """Two conv + max-pool blocks and a dense head, for small image shards (MedMNIST)."""
  del unused
  if len(input_shape) != 3:
    raise ValueError(f'small_cnn needs (height, width, channels) inputs, got {tuple(input_shape)}')
  inputs = tf.keras.Input(shape=tuple(input_shape), name='features')
  x = inputs
  for i, f in enumerate(filters):
    x = tf.keras.layers.Conv2D(
      f,
      3,
      padding='same',
      activation='relu',
      name=f'conv_{i}',
      kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed + i + 1),
    )(x)
    x = tf.keras.layers.MaxPool2D(name=f'pool_{i}')(x)
  x = tf.keras.layers.Flatten()(x)
  if dropout:
    x = SeededDropout(dropout, seed=seed, name='dropout')([x, inputs])
  return tf.keras.Model(inputs, _head(num_classes, seed)(x), name='small_cnn')


MODELS = {
  'logistic_regression': logistic_regression,
  'mlp': mlp,
  'small_cnn': small_cnn,
}


def build_model(
  name: str, input_shape: Sequence[int], num_classes: int, **kwargs
) -> tf.keras.Model:
  """Builds the registered model `name`.

  Raises:
    ConfigError: `name` is not registered (the message lists the valid names).
  """
  if name not in MODELS:
    raise unknown_name_error('model', name, MODELS)
  return MODELS[name](input_shape, num_classes, **kwargs)
