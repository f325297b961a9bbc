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
from lifelines import KaplanMeierFitter
from lifelines.utils import concordance_index

from tff_med.data.shards import FederatedShards
from tff_med.learning.cox import CoxPartialLikelihood
from tff_med.learning.evaluation import ALL, with_missing

METRICS = ('loss', 'cindex')
# Calibration horizons, in the time column's unit: 3 and 5 years in days.
HORIZONS = (1095.0, 1826.0)


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


def _harrell(time, event, risk) -> float:
  """Harrell's C-index by pairwise comparison (lifelines' rules), for the bootstrap.

  A pair is comparable when the earlier time is an event (or both times tie and
  only the first is an event); it is concordant when that patient has the higher
  risk, half when the risks tie. Equal to `lifelines.utils.concordance_index` on
  every set (tests); O(n^2), so the bootstrap's resamples of test sets of a few
  hundred patients cost microseconds each instead of lifelines' Python overhead.
  """
  earlier = (time[:, None] < time[None, :]) | (
    (time[:, None] == time[None, :]) & (event[None, :] == 0)
  )
  comparable = earlier & (event[:, None] == 1)
  pairs = comparable.sum()
  if not pairs:
    return math.nan
  higher = risk[:, None] > risk[None, :]
  tied = risk[:, None] == risk[None, :]
  return float((comparable & higher).sum() + 0.5 * (comparable & tied).sum()) / pairs


def bootstrap_ci(y, risk, *, seed: int, samples: int, level: float = 0.95) -> tuple[float, float]:
  """Percentile bootstrap interval of the C-index (resampling patients); NaN if undefined."""
  if undefined_reason(y) or samples < 1:
    return math.nan, math.nan
  rng = np.random.RandomState(seed)
  values = []
  for _ in range(samples):
    pick = rng.randint(0, len(y), len(y))
    values.append(_harrell(y[pick, 0], y[pick, 1], np.asarray(risk)[pick]))
  values = np.asarray(values)
  values = values[~np.isnan(values)]
  if not len(values):
    return math.nan, math.nan
  tail = (1 - level) / 2 * 100
  return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def baseline_survival(y_train: np.ndarray, risk_train: np.ndarray, horizons) -> np.ndarray:
  """Breslow's baseline survival S0(t) = exp(-H0(t)) at `horizons`, from training rows.

  H0(t) sums, over event times up to t, the deaths at that time over the sum of
  exp(risk) of everyone still at risk; a patient's predicted survival is then
  S0(t) ** exp(risk).
  """
  time, event = y_train[:, 0], y_train[:, 1]
  hazard = np.exp(risk_train - risk_train.max())  # Scaled for stability; undone below.
  event_times = np.unique(time[event == 1])
  deaths = np.array([event[time == t].sum() for t in event_times])
  at_risk = np.array([hazard[time >= t].sum() for t in event_times])
  cumulative = np.cumsum(deaths / at_risk) * np.exp(-risk_train.max())
  at = np.searchsorted(event_times, np.asarray(horizons), side='right') - 1
  return np.exp(-np.where(at >= 0, cumulative[np.maximum(at, 0)], 0.0))


def calibration(y, risk, base: np.ndarray, horizons) -> dict[str, float]:
  """Mean predicted survival and the test set's Kaplan–Meier survival at each horizon.

  NaN where the test set's follow-up ends before the horizon (or it is empty).
  """
  out = {}
  for t, s0 in zip(horizons, base, strict=True):
    followed = len(y) and y[:, 0].max() >= t
    predicted, observed = math.nan, math.nan
    if followed:
      predicted = float(np.mean(s0 ** np.exp(risk)))
      observed = float(
        KaplanMeierFitter().fit(y[:, 0], y[:, 1]).survival_function_at_times(t).iloc[0]
      )
    out[f'predicted_survival_at_{t:g}'] = predicted
    out[f'km_survival_at_{t:g}'] = observed
  return out


class SurvivalEvaluator:
  """Evaluates model weights on every hospital's test shard and on their union.

  Besides the loss and C-index, a calibration view: mean predicted survival
  (Breslow's baseline from the training rows) against the test set's
  Kaplan–Meier estimate at `horizons`. In this simulation the training rows
  are at hand; a deployment would sum each hospital's per-time deaths and
  sums of exp(risk) instead.

  Args:
    keras_model: A model of the task's architecture; weights are assigned to it.
    data: The standardized shards (y is (time, event)).
    horizons: Times at which to compare predicted and observed survival.
  """

  def __init__(self, keras_model: tf.keras.Model, data: FederatedShards, horizons=HORIZONS):
    self._model = keras_model
    self._horizons = horizons
    self._train = (
      np.concatenate([s.x_train for s in data.shards]),
      np.concatenate([s.y_train for s in data.shards]),
    )
    self._tests = {s.hospital: (s.x_test, s.y_test) for s in data.shards}
    self._loss = CoxPartialLikelihood()
    union = np.concatenate([y for _, y in self._tests.values()])
    self.notes = {h: undefined_reason(y) for h, (_, y) in self._tests.items()}
    self.notes[ALL] = undefined_reason(union)

  def evaluate(self, model_weights, absent=()) -> dict[str, dict[str, float]]:
    """{hospital or 'all': loss, C-index, calibration at the horizons, num_examples}.

    Hospitals in `absent` (simulated dropouts) have missing metrics, and so has the union.
    """
    model_weights.assign_weights_to(self._model)
    parts = {h: (y, self._risk(x)) for h, (x, y) in self._tests.items() if h not in absent}
    if not absent:
      parts[ALL] = tuple(np.concatenate(p) for p in zip(*parts.values(), strict=True))
    base = baseline_survival(self._train[1], self._risk(self._train[0]), self._horizons)
    results = {name: self._metrics(y, risk, base) for name, (y, risk) in parts.items()}
    return with_missing(results, list(self._tests))

  def _risk(self, x) -> np.ndarray:
    return self._model(x, training=False).numpy().reshape(-1).astype(np.float64)

  def _metrics(self, y, risk, base) -> dict[str, float]:
    loss = float(self._loss(y, risk[:, None])) if len(y) else math.nan
    return {
      'loss': loss,
      'cindex': cindex(y, risk),
      **calibration(y, risk, base, self._horizons),
      'num_examples': len(y),
    }
