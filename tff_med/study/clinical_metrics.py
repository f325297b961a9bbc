"""Clinical metrics of binary risk predictions, with seeded bootstrap confidence intervals.

Plain NumPy. A metric that needs both classes (AUC-ROC, PR-AUC, sensitivity or
specificity when a class is absent) is returned as NaN and its reason is kept
in `undefined`; it is never reported as 0 or 1.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tff_med.survival import evaluation as survival

THRESHOLD = 0.5
ECE_BINS = 10
BOOTSTRAP_SAMPLES = 1000
CI_METRICS = ('auc', 'sensitivity', 'specificity')


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
  """AUC-ROC as the Mann-Whitney statistic (ties count one half)."""
  pos, neg = p[y == 1], p[y == 0]
  if not len(pos) or not len(neg):
    return math.nan
  order = np.argsort(np.concatenate([pos, neg]), kind='mergesort')
  ranks = np.empty(len(order))
  values = np.concatenate([pos, neg])[order]
  # Average ranks over ties.
  _, first, counts = np.unique(values, return_index=True, return_counts=True)
  avg = first + (counts + 1) / 2.0
  ranks[order] = np.repeat(avg, counts)
  return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def pr_auc(y: np.ndarray, p: np.ndarray) -> float:
  """Average precision (area under the precision-recall curve, step-wise)."""
  if not (y == 1).any() or not (y == 0).any():
    return math.nan
  order = np.argsort(-p, kind='mergesort')
  hits = y[order] == 1
  precision = np.cumsum(hits) / np.arange(1, len(y) + 1)
  return float(precision[hits].sum() / hits.sum())


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
  """Mean |observed rate - mean predicted risk| over equal-width bins, weighted by size."""
  edges = np.linspace(0, 1, bins + 1)
  which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
  total = 0.0
  for b in range(bins):
    members = which == b
    if members.any():
      total += members.sum() * abs(y[members].mean() - p[members].mean())
  return float(total / len(y))


def point_metrics(y: np.ndarray, p: np.ndarray, threshold: float = THRESHOLD) -> dict:
  """AUC-ROC, PR-AUC, accuracy, sensitivity, specificity, Brier score and ECE."""
  if not len(y):
    return {
      k: math.nan
      for k in ('auc', 'pr_auc', 'accuracy', 'sensitivity', 'specificity', 'brier', 'ece')
    }
  predicted = p >= threshold
  pos, neg = y == 1, y == 0
  return {
    'auc': roc_auc(y, p),
    'pr_auc': pr_auc(y, p),
    'accuracy': float(np.mean(predicted == pos)),
    'sensitivity': float(predicted[pos].mean()) if pos.any() else math.nan,
    'specificity': float((~predicted[neg]).mean()) if neg.any() else math.nan,
    'brier': float(np.mean((p - y) ** 2)),
    'ece': expected_calibration_error(y, p),
  }


def undefined_reasons(y: np.ndarray) -> dict[str, str]:
  """Why each undefined metric is undefined on labels `y`."""
  if not len(y):
    return {
      k: 'empty test set'
      for k in ('auc', 'pr_auc', 'accuracy', 'sensitivity', 'specificity', 'brier', 'ece')
    }
  reasons = {}
  if not (y == 1).any():
    reasons.update(
      auc='no positive patients', pr_auc='no positive patients', sensitivity='no positive patients'
    )
  if not (y == 0).any():
    reasons.update(
      auc='no negative patients', pr_auc='no negative patients', specificity='no negative patients'
    )
  return reasons


def bootstrap_ci(y, p, *, seed: int, samples: int = BOOTSTRAP_SAMPLES, level: float = 0.95):
  """Percentile bootstrap CIs of AUC, sensitivity and specificity.

  Resamples patients with replacement (seeded); resamples in which a metric is
  undefined are skipped for that metric. Returns {metric: (low, high)}, NaN
  when the metric is undefined on the data itself. All resamples at once: each
  is a count per patient, and its AUC the Mann-Whitney sum over the patients'
  (positive, negative) pairs weighted by their counts (ties one half), which is
  `roc_auc` of that resample.
  """
  draws = _resampled_metrics(y, p, seed, samples)
  alpha = (1 - level) / 2
  reasons = undefined_reasons(y)
  result = {}
  for name in CI_METRICS:
    values = draws[name][~np.isnan(draws[name])]
    undefined = name in reasons or not len(values)
    result[name] = (
      (math.nan, math.nan)
      if undefined
      else (float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha)))
    )
  return result


def _resampled_metrics(y, p, seed: int, samples: int, threshold: float = THRESHOLD) -> dict:
  """{metric: one value per resample (NaN where undefined)}."""
  n = len(y)
  if not n:
    return {name: np.array([]) for name in CI_METRICS}
  # The same draws as `samples` calls of randint(0, n, n), in order.
  idx = np.random.RandomState(seed).randint(0, n, (samples, n))
  offsets = (np.arange(samples) * n)[:, None]
  counts = np.bincount((idx + offsets).ravel(), minlength=samples * n).reshape(samples, n)
  pos, neg = y == 1, y == 0
  c_pos, c_neg = counts[:, pos].astype(float), counts[:, neg].astype(float)
  n_pos, n_neg = c_pos.sum(1), c_neg.sum(1)
  above = p[pos][:, None] > p[neg][None, :]
  pairs = above + 0.5 * (p[pos][:, None] == p[neg][None, :])
  predicted = p >= threshold
  with np.errstate(invalid='ignore', divide='ignore'):
    return {
      'auc': np.einsum('si,ij,sj->s', c_pos, pairs, c_neg) / (n_pos * n_neg),
      'sensitivity': (c_pos @ predicted[pos]) / n_pos,
      'specificity': (c_neg @ ~predicted[neg]) / n_neg,
    }


@dataclasses.dataclass
class Evaluation:
  """Every metric of one model on one test set."""

  metrics: dict
  ci: dict
  undefined: dict
  n: int
  prevalence: float


def evaluate(
  y: np.ndarray, p: np.ndarray, *, seed: int, samples: int = BOOTSTRAP_SAMPLES
) -> Evaluation:
  """Point metrics, bootstrap CIs and undefined-metric reasons for one test set."""
  y = np.asarray(y).astype(int).ravel()
  p = np.asarray(p, np.float64).ravel()
  return Evaluation(
    point_metrics(y, p),
    bootstrap_ci(y, p, seed=seed),
    undefined_reasons(y),
    len(y),
    float(y.mean()) if len(y) else math.nan,
  )


def evaluate_survival(y: np.ndarray, risk: np.ndarray, *, seed: int, samples: int, base=None):
  """The study's metrics of one model on one test set: C-index with a bootstrap 95% CI.

  With `base` (`survival.evaluation.baseline_survival` at `HORIZONS` from the training rows), also
  the calibration view (`survival.evaluation.calibration`).

  Returns an `Evaluation` (its `prevalence` is the share of
  observed events), so the comparison study reports survival as it reports classes.
  """
  risk = np.asarray(risk, np.float64).ravel()
  reason = survival.undefined_reason(y)
  calibrated = survival.calibration(y, risk, base, survival.HORIZONS) if base is not None else {}
  return Evaluation(
    {'cindex': survival.cindex(y, risk), **calibrated},
    {'cindex': survival.bootstrap_ci(y, risk, seed=seed, samples=samples)},
    {'cindex': reason} if reason else {},
    len(y),
    float(y[:, 1].mean()) if len(y) else math.nan,
  )
