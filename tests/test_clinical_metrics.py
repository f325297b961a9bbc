"""Clinical metrics, checked against values worked out by hand."""

import math

import numpy as np
import pytest

from tff_med.study import clinical_metrics as cm

Y = np.array([1, 1, 0, 0, 1, 0])
P = np.array([0.9, 0.4, 0.35, 0.1, 0.8, 0.6])


def test_auc_counts_correctly_ordered_pairs():
  # Positive scores 0.9, 0.4, 0.8 vs negatives 0.35, 0.1, 0.6: 8 of 9 pairs ordered.
  assert cm.roc_auc(Y, P) == pytest.approx(8 / 9)


def test_auc_ties_count_half():
  assert cm.roc_auc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5


def test_threshold_metrics():
  m = cm.point_metrics(Y, P)
  # Predicted positive: 0.9, 0.8, 0.6 -> TP 2, FN 1 (0.4), FP 1 (0.6), TN 2.
  assert m['sensitivity'] == pytest.approx(2 / 3)
  assert m['specificity'] == pytest.approx(2 / 3)
  assert m['accuracy'] == pytest.approx(4 / 6)
  assert m['brier'] == pytest.approx(np.mean((P - Y) ** 2))


def test_average_precision():
  # Ranked: 0.9(+) 0.8(+) 0.6(-) 0.4(+) -> precisions at hits 1, 1, 3/4.
  assert cm.pr_auc(Y, P) == pytest.approx((1 + 1 + 0.75) / 3)


def test_ece_is_the_gap_between_observed_rate_and_mean_risk():
  y = np.array([1, 0, 1, 0])
  p = np.array([0.55, 0.55, 0.55, 0.55])
  assert cm.expected_calibration_error(y, p) == pytest.approx(0.05)


def test_one_class_test_set_reports_undefined_never_zero_or_one():
  e = cm.evaluate(np.ones(5), np.linspace(0.1, 0.9, 5), seed=0)
  assert math.isnan(e.metrics['auc']) and math.isnan(e.metrics['specificity'])
  assert e.undefined['auc'] == 'no negative patients'
  assert math.isnan(e.ci['auc'][0])
  assert not math.isnan(e.metrics['sensitivity'])


def test_bootstrap_is_seeded_and_brackets_the_estimate():
  rng = np.random.RandomState(1)
  y = rng.randint(0, 2, 200)
  p = np.clip(y * 0.3 + rng.rand(200) * 0.7, 0, 1)
  a = cm.bootstrap_ci(y, p, seed=3, samples=200)
  assert a == cm.bootstrap_ci(y, p, seed=3, samples=200)
  low, high = a['auc']
  assert low < cm.roc_auc(y, p) < high


def _one_resample_at_a_time(y, p, seed, samples):
  """The bootstrap as first written: a loop of resamples through `roc_auc` (the reference)."""
  rng = np.random.RandomState(seed)
  draws = {m: [] for m in cm.CI_METRICS}
  for _ in range(samples):
    idx = rng.randint(0, len(y), len(y))
    yy, pp = y[idx], p[idx]
    predicted, pos = pp >= cm.THRESHOLD, yy == 1
    metrics = {
      'auc': cm.roc_auc(yy, pp),
      'sensitivity': predicted[pos].mean() if pos.any() else math.nan,
      'specificity': (~predicted[~pos]).mean() if (~pos).any() else math.nan,
    }
    for name, value in metrics.items():
      if not math.isnan(value):
        draws[name].append(value)
  return {
    name: (np.quantile(v, 0.025), np.quantile(v, 0.975)) if v else (math.nan, math.nan)
    for name, v in draws.items()
  }


@pytest.mark.parametrize('rows', [200, 7, 3])
def test_the_vectorized_bootstrap_equals_one_resample_at_a_time(rows):
  rng = np.random.RandomState(rows)
  y = rng.randint(0, 2, rows)
  p = np.round(rng.rand(rows), 1)  # Rounded: many ties, as a model's scores can have.
  fast = cm.bootstrap_ci(y, p, seed=5, samples=300)
  slow = _one_resample_at_a_time(y, p, seed=5, samples=300)
  for name in cm.CI_METRICS:
    np.testing.assert_allclose(fast[name], slow[name], rtol=0, atol=1e-12, err_msg=name)
