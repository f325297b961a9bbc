"""Evaluation of a survival model at every hospital and on the union of their test sets.

Harrell's concordance index (FLamby's metric for Fed-TCGA-BRCA, computed by
`lifelines.utils.concordance_index` as FLamby does) and the Cox partial
likelihood of each test set. The C-index compares pairs of patients, across
batches and, for the union, across hospitals, so it is no sum of per-hospital
counts that TFF could aggregate: in this simulation the test predictions are
made in-process, and remote deployments refuse survival studies until a
pairwise-private protocol exists. A test set without an observed event has no
comparable pair: its C-index is undefined, reported as NaN with a note, never 0.5.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from lifelines.utils import concordance_index

from tff_med.data.shards import FederatedShards
from tff_med.survival.cox import CoxPartialLikelihood

ALL = 'all'
METRICS = ('loss', 'cindex')


def undefined_reason(y: np.ndarray) -> str | None:
  """Why the C-index is undefined on a test set of (time, event) rows, or None."""
  if len(y) == 0:
    return 'test shard is empty'
  if not y[:, 1].any():
    return 'test shard has no observed event'
  return None


def cindex(y: np.ndarray, risk: np.ndarray) -> float:
  """Harrell's C-index of risk scores (higher = earlier event) on (time, event) rows; NaN if undefined."""
  if undefined_reason(y):
    return math.nan
  try:
    return float(concordance_index(y[:, 0], -np.ravel(risk), y[:, 1]))
  except ZeroDivisionError:  # Events, but no comparable pair (every event last).
    return math.nan


def bootstrap_ci(y, risk, *, seed: int, samples: int, level: float = 0.95) -> tuple[float, float]:
  """Percentile bootstrap interval of the C-index (resampling patients); NaN if undefined."""
  if undefined_reason(y) or samples < 1:
    return math.nan, math.nan
  rng = np.random.RandomState(seed)
  values = []
  for _ in range(samples):
    pick = rng.randint(0, len(y), len(y))
    values.append(cindex(y[pick], risk[pick]))
  values = np.asarray(values)
  values = values[~np.isnan(values)]
  if not len(values):
    return math.nan, math.nan
  tail = (1 - level) / 2 * 100
  return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def evaluate(y: np.ndarray, risk: np.ndarray, *, seed: int, samples: int):
  """The study's metrics of one model on one test set: C-index with a bootstrap 95% CI.

  Returns a `clinical_metrics.Evaluation` (its `prevalence` is the share of
  observed events), so the comparison study reports survival as it reports classes.
  """
  from tff_med.study.clinical_metrics import Evaluation  # The study's row type.

  risk = np.asarray(risk, np.float64).ravel()
  reason = undefined_reason(y)
  return Evaluation(
    {'cindex': cindex(y, risk)},
    {'cindex': bootstrap_ci(y, risk, seed=seed, samples=samples)},
    {'cindex': reason} if reason else {},
    len(y),
    float(y[:, 1].mean()) if len(y) else math.nan,
  )


class SurvivalEvaluator:
  """Evaluates model weights on every hospital's test shard and on their union.

  Args:
    keras_model: A model of the task's architecture; weights are assigned to it.
    data: The standardized shards (y is (time, event)).
  """

  def __init__(self, keras_model: tf.keras.Model, data: FederatedShards):
    self._model = keras_model
    self._tests = {s.hospital: (s.x_test, s.y_test) for s in data.shards}
    self._loss = CoxPartialLikelihood()
    union = np.concatenate([y for _, y in self._tests.values()])
    self.notes = {h: undefined_reason(y) for h, (_, y) in self._tests.items()}
    self.notes[ALL] = undefined_reason(union)

  def evaluate(self, model_weights) -> dict[str, dict[str, float]]:
    """Returns {hospital or 'all': {'loss', 'cindex', 'num_examples'}} for `model_weights`."""
    model_weights.assign_weights_to(self._model)
    parts = {
      h: (y, self._model(x, training=False).numpy().reshape(-1))
      for h, (x, y) in self._tests.items()
    }
    parts[ALL] = tuple(np.concatenate(p) for p in zip(*parts.values(), strict=True))
    return {name: self._metrics(y, risk) for name, (y, risk) in parts.items()}

  def _metrics(self, y, risk) -> dict[str, float]:
    loss = float(self._loss(y, risk[:, None])) if len(y) else math.nan
    return {'loss': loss, 'cindex': cindex(y, risk), 'num_examples': len(y)}
