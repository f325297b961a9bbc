"""Keras loss and metrics for binary and multiclass risk models, and survival models.

TFF aggregates these across hospitals by summing their variables, so the
"all hospitals" AUC is the AUC of the union of test sets, not a mean of AUCs.
"""

from __future__ import annotations

import tensorflow as tf

from tff_med.data.targets import SURVIVAL_OUTPUTS
from tff_med.learning.cox import CoxPartialLikelihood

AUC_THRESHOLDS = 500


class SparseMacroAUC(tf.keras.metrics.AUC):
  """One-vs-rest macro AUC-ROC for integer labels and logits (of the softmax probabilities)."""

  def __init__(self, num_classes: int, name: str = 'auc', **kwargs):
    kwargs.pop('multi_label', None)
    kwargs.pop('num_labels', None)
    super().__init__(
      name=name,
      multi_label=True,
      num_labels=num_classes,
      num_thresholds=kwargs.pop('num_thresholds', AUC_THRESHOLDS),
      **kwargs,
    )
    self._num_classes = num_classes

  def update_state(self, y_true, y_pred, sample_weight=None):
    y_true = tf.one_hot(tf.reshape(tf.cast(y_true, tf.int32), [-1]), self._num_classes)
    super().update_state(y_true, tf.nn.softmax(y_pred), sample_weight)

  def get_config(self):
    config = super().get_config()
    config.update(num_classes=self._num_classes)
    for key in ('multi_label', 'num_labels', 'label_weights'):
      config.pop(key, None)
    return config


def loss_fn(num_classes: int, reduction: str = 'auto') -> tf.keras.losses.Loss:
  """Cross-entropy on logits (`logits.logits_model`), binary or sparse categorical.

  `reduction='none'` gives one loss per example (DP-SGD clips each one's gradient).
  A survival model (`num_classes` 1) trains on the Cox partial likelihood.
  """
  if num_classes == SURVIVAL_OUTPUTS:
    return CoxPartialLikelihood(reduction=reduction)
  if num_classes == 2:
    return tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction=reduction)
  return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)


def metric_builders(num_classes: int) -> list:
  """No-arg constructors of accuracy and AUC-ROC on logits (TFF builds fresh ones per client).

  Accuracy thresholds the logit at 0 (the probability at 0.5); AUC buckets the
  probabilities, as on the model's own output.

  A survival model has none: its C-index compares patients across batches and
  hospitals (`tff_med.survival.evaluation`).
  """
  if num_classes == SURVIVAL_OUTPUTS:
    return []
  if num_classes == 2:
    return [
      lambda: tf.keras.metrics.BinaryAccuracy(name='accuracy', threshold=0.0),
      lambda: tf.keras.metrics.AUC(name='auc', num_thresholds=AUC_THRESHOLDS, from_logits=True),
    ]
  return [
    lambda: tf.keras.metrics.SparseCategoricalAccuracy(name='accuracy'),
    lambda: SparseMacroAUC(num_classes),
  ]
