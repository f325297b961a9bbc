"""The consortium's Kaplan–Meier curve without sharing a row (Kaplan & Meier, 1958).

Each hospital turns its (time, event) rows into two counts per time bin, deaths
and censorings, and only counts leave it: a TFF computation maps each
hospital's rows to its counts (`tff.federated_map`) and adds them up
(`tff.federated_sum`) for the pooled curve; per-hospital curves release each
hospital's own counts. Minimum-count rule: no published bin holds between 1 and
`min_count - 1` patients (deaths and censorings together); a hospital checks
its own counts before releasing them, and the bin width doubles until they
pass. With bins of one day and no minimum, integer times give exactly the
estimate on the pooled rows.

From the counts: the product-limit estimate, its log-log (exponential
Greenwood) confidence band, as lifelines computes them, and the log-rank test
across hospitals (chi-square, hospitals - 1 degrees of freedom), whose sums are
per-bin too. The rule protects what is published (curves, tables, plots); the
sum itself reaches the coordinator's TFF runtime in the clear, as every TFF sum
here does (secure aggregation is a separate capability).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.stats
import tensorflow as tf
import tensorflow_federated as tff

from tff_med import runtime  # noqa: F401  (installs the owned TFF context these calls run in)
from tff_med.data.shards import FederatedShards
from tff_med.errors import ConfigError

POOLED = 'pooled'


@dataclasses.dataclass
class Curve:
  """A product-limit estimate over time bins starting at `times` (days)."""

  times: np.ndarray  # Bin starts.
  width: float  # Bin width.
  deaths: np.ndarray
  censored: np.ndarray
  at_risk: np.ndarray  # At the start of each bin.
  survival: np.ndarray  # After each bin.
  lower: np.ndarray
  upper: np.ndarray


@dataclasses.dataclass
class KaplanMeier:
  """Per-hospital and pooled curves, the bin width used and the log-rank test."""

  curves: dict[str, Curve]  # Hospitals, and POOLED; each with its own bins.
  bin_days: float  # The pooled curve's bin width.
  min_count: int
  logrank_statistic: float
  logrank_p: float


def _counts_computation(bins: int):
  rows_type = tff.TensorType(np.float32, [None, 2])
  edges_type = tff.TensorType(np.float64, [bins + 1])

  @tff.tensorflow.computation(rows_type, edges_type)
  def local_counts(rows, edges):
    time, event = tf.cast(rows[:, 0], tf.float64), tf.cast(rows[:, 1], tf.float64)
    index = tf.searchsorted(edges, time, side='right') - 1
    deaths = tf.math.unsorted_segment_sum(event, index, bins)
    censored = tf.math.unsorted_segment_sum(1.0 - event, index, bins)
    return deaths, censored

  return local_counts


def _federated_counts(bins: int, min_count: int):
  """(sum of counts over hospitals, number of hospitals failing the minimum-count rule)."""
  local_counts = _counts_computation(bins)
  rows_at_clients = tff.FederatedType(local_counts.type_signature.parameter[0], tff.CLIENTS)
  edges_at_server = tff.FederatedType(local_counts.type_signature.parameter[1], tff.SERVER)

  @tff.tensorflow.computation(local_counts.type_signature.result)
  def fails(counts):
    leaving = counts[0] + counts[1]  # Deaths and censorings of the bin.
    return tf.cast(tf.reduce_any((leaving > 0) & (leaving < min_count)), tf.int32)

  @tff.federated_computation(rows_at_clients, edges_at_server)
  def counts(client_rows, edges):
    local = tff.federated_map(local_counts, (client_rows, tff.federated_broadcast(edges)))
    return tff.federated_sum(local), tff.federated_sum(tff.federated_map(fails, local))

  return counts


def _curve(edges, deaths, censored, z) -> Curve:
  at_risk = deaths.sum() + censored.sum() - np.concatenate([[0], np.cumsum(deaths + censored)[:-1]])
  with np.errstate(divide='ignore', invalid='ignore'):
    log_survival = np.cumsum(np.where(at_risk > 0, np.log(at_risk - deaths) - np.log(at_risk), 0))
    greenwood = np.cumsum(np.where(at_risk > deaths, deaths / (at_risk * (at_risk - deaths)), 0))
    survival = np.exp(log_survival)
    v = log_survival
    spread = z * np.sqrt(greenwood) / v
    lower = np.nan_to_num(np.exp(-np.exp(np.log(-v) - spread)), nan=1.0)
    upper = np.nan_to_num(np.exp(-np.exp(np.log(-v) + spread)), nan=1.0)
  return Curve(edges[:-1], float(edges[1]), deaths, censored, at_risk, survival, lower, upper)


def _logrank(curves: dict[str, Curve], hospitals: list[str]) -> tuple[float, float]:
  d = np.stack([curves[h].deaths for h in hospitals])  # [hospitals, bins]
  n = np.stack([curves[h].at_risk for h in hospitals])
  d_all, n_all = d.sum(0), n.sum(0)
  used = (n_all > 1) & (d_all > 0)
  d, n, d_all, n_all = d[:, used], n[:, used], d_all[used], n_all[used]
  expected = (n * d_all / n_all).sum(1)
  share = n / n_all
  weight = d_all * (n_all - d_all) / (n_all - 1)
  # Hypergeometric covariance of the per-hospital deaths, summed over bins.
  variance = np.diag(share @ weight) - np.einsum('t,gt,ht->gh', weight, share, share)
  difference = (d.sum(1) - expected)[:-1]
  statistic = float(difference @ np.linalg.solve(variance[:-1, :-1], difference))
  return statistic, float(scipy.stats.chi2.sf(statistic, len(hospitals) - 1))


def _edges(horizon: float, width: float) -> np.ndarray:
  return width * np.arange(0, np.floor(horizon / width) + 2)  # The last edge is past every time.


def _passes(deaths, censored, min_count: int) -> bool:
  leaving = np.asarray(deaths) + np.asarray(censored)
  return not ((leaving > 0) & (leaving < min_count)).any()


def _binned(rows: list[np.ndarray], horizon: float, width: float, min_count: int, pooled: bool):
  """(edges, deaths, censored) at the narrowest width from `width` up that the rule allows.

  For one hospital (`pooled` False) the hospital itself checks its counts and
  releases them only once they pass; for the pooled curve the rule applies to
  the summed counts, which are what is published.
  """
  while True:
    edges = _edges(horizon, width)
    (deaths, censored), failing = _federated_counts(len(edges) - 1, min_count)(rows, edges)
    if pooled:
      failing = not _passes(deaths, censored, min_count)
    if not failing:
      return edges, np.asarray(deaths), np.asarray(censored)
    if len(edges) == 2:
      raise ConfigError(
        f'fewer than {min_count} patients in all{"" if pooled else " at a hospital"}: no bin '
        'width meets the minimum-count rule; lower the minimum'
      )
    width *= 2


def _censored_at(rows: np.ndarray, horizon: float | None) -> np.ndarray:
  """Rows followed past `horizon` become censored at it (administrative censoring)."""
  if horizon is None:
    return rows
  late = rows[:, 0] > horizon
  return np.where(late[:, None], np.array([horizon, 0.0], rows.dtype), rows)


def federated_kaplan_meier(
  data: FederatedShards,
  *,
  bin_days: float = 1.0,
  min_count: int = 0,
  horizon: float | None = None,
  alpha: float = 0.05,
) -> KaplanMeier:
  """The pooled and per-hospital Kaplan–Meier curves of `data`'s training and test rows.

  Runs TFF computations in the current context; only per-bin counts leave a
  hospital. Each published curve has the narrowest bins, from `bin_days` up by
  doubling, whose nonzero bins hold at least `min_count` patients: a hospital's
  own curve by the hospital's check, the pooled curve by its summed counts. The
  log-rank test uses each hospital's deaths and numbers at risk at the pooled
  curve's bins; only its statistic and p-value are published.

  Args:
    data: Survival shards (y is (time, event)).
    bin_days: The narrowest bin width, in the time column's unit.
    min_count: The fewest patients a published bin may hold (0: no rule).
    horizon: Follow-up shown (curves stop there; later times count as censored
      at it), so the few longest followed patients do not force wide bins.
    alpha: 1 - the confidence level of the bands.

  Raises:
    ConfigError: No bin width meets the minimum-count rule.
  """
  rows = {
    s.hospital: _censored_at(np.concatenate([s.y_train, s.y_test]), horizon) for s in data.shards
  }
  horizon = max(float(r[:, 0].max()) for r in rows.values())
  z = scipy.stats.norm.ppf(1 - alpha / 2)
  curves = {}
  for hospital, r in rows.items():
    edges, deaths, censored = _binned([r], horizon, bin_days, min_count, pooled=False)
    curves[hospital] = _curve(edges, deaths, censored, z)
  edges, deaths, censored = _binned(list(rows.values()), horizon, bin_days, min_count, pooled=True)
  curves[POOLED] = _curve(edges, deaths, censored, z)
  local_counts = _counts_computation(len(edges) - 1)
  at_pooled_bins = {
    h: _curve(edges, *map(np.asarray, local_counts(r, edges)), z) for h, r in rows.items()
  }
  statistic, p = _logrank(at_pooled_bins, data.hospitals)
  return KaplanMeier(curves, float(edges[1]), min_count, statistic, p)
