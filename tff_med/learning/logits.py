"""The logits behind a classifier's probabilities: what every training path's loss takes.

tff_med's classifiers end in a sigmoid or softmax (`models`), so an exported model
predicts risks. Keras's `model.fit` trains such a model on the logits behind its
probabilities (Keras keeps them on the activation's output), but TFF calls a Keras
model through its own tf.function, where they are lost: its cross-entropy then takes
the probabilities clipped to [1e-7, 1 - 1e-7], so a confidently wrong patient adds no
gradient, and a saturated model's training turns on the last bits of its sigmoid
(XLA's and TensorFlow's differ there: the two engines' robustness studies parted on
the attacked FedAvg, measured 2026-12-05). So TFF's process, the fused engine, the
evaluations and the pooled baseline all wrap the model in `logits_model`, with
`metrics.loss_fn` and `metrics.metric_builders` on logits. Keras has no such view
of a model; this one is ours.
"""

from __future__ import annotations

import tensorflow as tf

from tff_med.data.targets import SURVIVAL_OUTPUTS
from tff_med.errors import ConfigError


class _Logits(tf.keras.layers.Layer):
  """The head's output before its activation; its weights are the head's own."""

  def __init__(self, head: tf.keras.layers.Layer, **kwargs):
    super().__init__(name=f'{head.name}_logits', **kwargs)
    self.head = head

  def call(self, inputs):
    # The head's own call (bit for bit Keras's), its activation swapped out while traced.
    activation, self.head.activation = self.head.activation, tf.keras.activations.linear
    try:
      return self.head.call(inputs)
    finally:
      self.head.activation = activation


def logits_model(model: tf.keras.Model, num_classes: int) -> tf.keras.Model:
  """`model` (sharing its layers and weights, in the same order) up to its head's logits.

  A survival model (`num_classes` 1) outputs a risk score already: it is returned as is.

  Raises:
    ConfigError: A classifier whose last layer is not a sigmoid (two classes) or
      softmax (more) activation, or is used more than once.
  """
  if num_classes == SURVIVAL_OUTPUTS:
    return model
  head = model.layers[-1]
  want = tf.keras.activations.sigmoid if num_classes == 2 else tf.keras.activations.softmax
  if len(model.outputs) != 1 or getattr(head, 'activation', None) is not want:
    raise ConfigError(
      f'model {model.name!r}: tff_med trains a {num_classes}-class model on its logits, so its'
      f' last layer must apply {want.__name__}; {head.name!r} applies'
      f' {getattr(getattr(head, "activation", None), "__name__", "no activation")}'
    )
  if len(head.inbound_nodes) != 1:
    raise ConfigError(f'model {model.name!r}: its last layer {head.name!r} is used more than once')
  return tf.keras.Model(model.inputs, _Logits(head)(head.input), name=f'{model.name}_logits')
