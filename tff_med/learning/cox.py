"""The Cox proportional-hazards partial likelihood as a Keras loss (Cox, 1972).

A survival model outputs one risk score per patient (a log hazard ratio); the
loss is the negative partial log-likelihood of the batch. Ties are handled the
Breslow way: every patient whose time is at least an event's time is in that
event's risk set, tied event times share it. The log of each risk set's sum is
a masked `reduce_logsumexp`, which stays finite however large the scores are.
FLamby's Fed-TCGA-BRCA baseline trains this loss on a linear model.
"""

from __future__ import annotations

import tensorflow as tf


class CoxPartialLikelihood(tf.keras.losses.Loss):
  """Negative Cox partial log-likelihood of a batch, averaged over its observed events.

  `y_true` is [batch, 2] (time, event); `y_pred` is [batch, 1] risk scores.
  A batch without an observed event has loss 0 (and no gradient). The loss is
  not a sum over patients (each term involves its whole risk set), so it has no
  per-example form: patient-level DP-SGD cannot clip it patient by patient.
  """

  def __init__(self, name: str = 'cox_partial_likelihood', **kwargs):
    super().__init__(name=name, **kwargs)

  def call(self, y_true, y_pred):
    y_true = tf.cast(y_true, y_pred.dtype)
    time, event = y_true[:, 0], y_true[:, 1]
    risk = tf.reshape(y_pred, [-1])
    in_risk_set = time[tf.newaxis, :] >= time[:, tf.newaxis]  # [i, j]: j at risk at t_i.
    scores = tf.where(in_risk_set, risk[tf.newaxis, :], tf.constant(-float('inf'), risk.dtype))
    log_risk_set = tf.reduce_logsumexp(scores, axis=1)
    partial = event * (risk - log_risk_set)
    return -tf.reduce_sum(partial) / tf.maximum(tf.reduce_sum(event), 1.0)
