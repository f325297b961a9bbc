"""Survival studies: the Cox loss, the C-index, survival shards and a federated Cox run."""

import math
import os

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test
from lifelines.utils import concordance_index

from configs import tcga_brca as tcga_config
from configs import tcga_brca_compare as tcga_compare_config
from tests.shard_fixtures import write_shards
from tff_med import experiment, runtime
from tff_med.data import tcga_brca
from tff_med.data.shards import load_csv_shards
from tff_med.errors import ConfigError, ShardError
from tff_med.run import export
from tff_med.study import compare
from tff_med.survival import evaluation, kaplan_meier, km_report
from tff_med.learning.cox import CoxPartialLikelihood

SURVIVAL_HEADER = 'age,stage,event,days'
SURVIVAL_TABLES = {
  'alpha': {
    'train': ['61,2,1,300', '45,1,0,900', '70,3,1,120', '38,1,0,1500'],
    'test': ['55,2,1,400', '41,1,0,800'],
  },
  'beta': {
    'train': ['66,3,1,200', '50,1,0,1000', '59,2,1,650'],
    'test': ['48,1,0,700', '72,3,1,90'],
  },
}


def load_survival(root, tables=None):
  write_shards(root, tables or SURVIVAL_TABLES, SURVIVAL_HEADER)
  return load_csv_shards(str(root), event='event', time='days')


def test_cox_loss_equals_lifelines_partial_likelihood_without_ties():
  rng = np.random.default_rng(0)
  x = rng.normal(size=40)
  time, event = rng.exponential(np.exp(-x)) * 10, (rng.random(40) < 0.7).astype(float)
  fitted = CoxPHFitter().fit(pd.DataFrame({'x': x, 'T': time, 'E': event}), 'T', 'E')
  risk = (fitted.params_['x'] * x)[:, None]
  loss = float(CoxPartialLikelihood()(np.stack([time, event], 1), risk))
  assert -loss * event.sum() == pytest.approx(fitted.log_likelihood_, abs=1e-9)


def test_cox_loss_handles_ties_the_breslow_way_and_stays_finite():
  # Times 1, 1, 2; events at both t=1; risks 0, ln 2, 0. Breslow: each t=1 event's
  # risk set is all three patients: -(0 - ln 4) - (ln 2 - ln 4) = ln 8, over 2 events.
  y = np.array([[1.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
  risk = np.array([[0.0], [math.log(2)], [0.0]])
  assert float(CoxPartialLikelihood()(y, risk)) == pytest.approx(math.log(8) / 2)
  assert math.isfinite(float(CoxPartialLikelihood()(y, risk * 1e5)))
  assert float(CoxPartialLikelihood()(np.array([[1.0, 0.0]]), np.array([[3.0]]))) == 0.0


def test_cindex_is_harrells_and_undefined_without_events():
  y = np.array([[1.0, 1.0], [2.0, 1.0], [3.0, 0.0]])
  assert evaluation.cindex(y, np.array([3.0, 2.0, 1.0])) == 1.0
  assert evaluation.cindex(y, np.array([1.0, 2.0, 3.0])) == 0.0
  censored = y.copy()
  censored[:, 1] = 0
  assert math.isnan(evaluation.cindex(censored, np.array([1.0, 2.0, 3.0])))
  assert evaluation.undefined_reason(censored) == 'test shard has no observed event'


@pytest.fixture
def survival_root(tmp_path):
  return tmp_path / 'shards'


def test_survival_shards_read_time_and_event_and_keep_them_out_of_features(survival_root):
  data = load_survival(survival_root)
  assert data.survival and data.feature_names == ['age', 'stage']
  np.testing.assert_array_equal(data['beta'].y_test, [[700, 0], [90, 1]])


@pytest.mark.parametrize(
  'row, message',
  [
    ('61,2,1,-3', r"column 'days', row 1: time is negative, got -3"),
    ('61,2,2,300', r"column 'event', row 1: event must be 0 \(censored\) or 1 \(observed\), got 2"),
    ('61,2,1,', r"column 'days', row 1: value is missing"),
  ],
)
def test_bad_survival_targets_are_named(survival_root, row, message):
  tables = {**SURVIVAL_TABLES, 'beta': {**SURVIVAL_TABLES['beta'], 'train': [row, '50,1,1,10']}}
  with pytest.raises(ShardError, match=r"hospital 'beta', file '.*beta/train.csv', " + message):
    load_survival(survival_root, tables)


def test_a_training_shard_without_any_event_is_refused(survival_root):
  tables = {**SURVIVAL_TABLES, 'beta': {**SURVIVAL_TABLES['beta'], 'train': ['66,3,0,200']}}
  with pytest.raises(
    ShardError, match=r"hospital 'beta', .*column 'event': the training shard has no observed event"
  ):
    load_survival(survival_root, tables)


def test_embedded_tcga_brca_shards_follow_flambys_split(tmp_path):
  data = load_csv_shards(tcga_brca.write_shards(str(tmp_path)), event='E', time='T')
  assert data.hospitals == [f'region_{k}' for k in range(6)]
  assert [len(s.y_train) for s in data.shards] == [248, 156, 164, 129, 129, 40]
  assert [len(s.y_test) for s in data.shards] == [63, 40, 42, 33, 33, 11]
  assert len(data.feature_names) == 39


@pytest.mark.parametrize(
  'changes, message',
  [
    ({'label': 'heart_disease'}, r'data.time is set on a classification config'),
    ({'event': ''}, r'needs both data.event and data.time; data.event is not set'),
    ({'time': ''}, r'data.time is not set'),
    ({'runtime_engine': 'fused'}, r"survival study does not support runtime.engine='fused'"),
  ],
)
def test_survival_config_errors_name_the_setting(tmp_path, changes, message):
  config = tcga_config.get_config('smoke')
  config.data.root = str(tmp_path / 'data')
  for key, value in changes.items():
    if key == 'runtime_engine':
      config.runtime.engine = value
    else:
      config.data[key] = value
  with pytest.raises(ConfigError, match=message):
    experiment.train(config, str(tmp_path / 'run'), print_fn=lambda _: None)
  assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_federated_cox_run_reports_cindex_per_region_and_on_the_union(tmp_path):
  config = tcga_config.get_config('smoke')
  config.data.root = str(tmp_path / 'data')
  lines = []
  result = experiment.train(config, str(tmp_path / 'run'), print_fn=lines.append)
  assert 'eval C-index' in lines[-3]
  assert result.table.startswith('| test set | n | Cox loss | C-index |')
  final = result.loop.final_eval
  assert set(final) == {f'region_{k}' for k in range(6)} | {'all'}
  assert 0.6 < final['all']['cindex'] <= 1
  metrics = pd.read_csv(tmp_path / 'run' / 'metrics.csv')
  assert {'eval/region_0/cindex', 'eval/all/predicted_survival_at_1826'} <= set(metrics.columns)
  scored = tmp_path / 'scores.csv'
  export.score_csv(
    str(tmp_path / 'run'), str(tmp_path / 'data' / 'region_1' / 'test.csv'), str(scored)
  )
  assert pd.read_csv(scored).columns[-1] == 'risk_score'


@pytest.fixture(scope='module')
def brca(tmp_path_factory):
  root = tcga_brca.write_shards(str(tmp_path_factory.mktemp('brca')))
  return load_csv_shards(root, event='E', time='T')


def _pooled_rows(data):
  return np.concatenate([np.concatenate([s.y_train, s.y_test]) for s in data.shards])


def test_federated_kaplan_meier_equals_the_pooled_estimate_with_daily_bins(brca):
  with runtime.local_runtime():
    result = kaplan_meier.federated_kaplan_meier(brca, bin_days=1, min_count=0)
  rows = _pooled_rows(brca)
  fitter = KaplanMeierFitter().fit(rows[:, 0], rows[:, 1])
  pooled = result.curves[kaplan_meier.POOLED]
  expected = fitter.survival_function_at_times(pooled.times).to_numpy()
  np.testing.assert_allclose(pooled.survival, expected, rtol=0, atol=1e-12)
  band = fitter.confidence_interval_
  at = np.searchsorted(band.index.to_numpy(), pooled.times, side='right') - 1
  np.testing.assert_allclose(pooled.lower, band.iloc[at, 0].to_numpy(), atol=1e-12)
  np.testing.assert_allclose(pooled.upper, band.iloc[at, 1].to_numpy(), atol=1e-12)
  groups = np.concatenate([[s.hospital] * (len(s.y_train) + len(s.y_test)) for s in brca.shards])
  logrank = multivariate_logrank_test(rows[:, 0], groups, rows[:, 1])
  assert result.logrank_statistic == pytest.approx(logrank.test_statistic, rel=1e-12)
  assert result.logrank_p == pytest.approx(logrank.p_value, rel=1e-9)


def test_no_published_bin_holds_fewer_than_the_minimum(brca, tmp_path):
  with runtime.local_runtime():
    result = kaplan_meier.federated_kaplan_meier(brca, bin_days=30, min_count=5, horizon=1826)
  for name, curve in result.curves.items():
    leaving = curve.deaths + curve.censored
    assert not ((leaving > 0) & (leaving < 5)).any(), name
    assert curve.times[-1] < 1826 <= curve.times[-1] + curve.width
  summary = km_report.write(str(tmp_path), result)
  assert 'Log-rank test across hospitals' in summary
  assert {'km.csv', 'km.md', 'km.png'} <= set(os.listdir(tmp_path))


def test_a_minimum_no_bin_width_can_meet_is_refused(brca):
  with runtime.local_runtime(), pytest.raises(ConfigError, match='no bin width meets'):
    kaplan_meier.federated_kaplan_meier(brca, bin_days=30, min_count=10_000)


@pytest.mark.slow
def test_smoke_survival_study_reports_cindex_next_to_flamby(tmp_path):
  config = tcga_compare_config.get_config('smoke')
  config.data.root = str(tmp_path / 'data')
  study = compare.run_study(config, str(tmp_path / 'study'), print_fn=lambda _: None)
  assert '| fedavg |' in study.summary and '0.735 ± 0.175 / 0.732' in study.summary
  rows = pd.read_csv(tmp_path / 'study' / 'results.csv')
  fedavg = rows[(rows.method == 'fedavg') & (rows.test_set == 'all')].iloc[0]
  assert fedavg.cindex_ci_low <= fedavg.cindex <= fedavg.cindex_ci_high
  assert {'cross_site_cindex.png', 'learning_curves.png', 'summary.md'} <= set(
    os.listdir(tmp_path / 'study')
  )
  assert '| event rate (train) |' in (tmp_path / 'study' / 'heterogeneity.md').read_text()
  assert '## Calibration on the union of test sets' in study.summary


def test_predicted_survival_uses_breslows_baseline_as_lifelines_does():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(60, 2))
  time, event = rng.exponential(np.exp(-x[:, 0])) * 100, (rng.random(60) < 0.7).astype(float)
  table = pd.DataFrame({'a': x[:, 0], 'b': x[:, 1], 'T': time, 'E': event})
  fitted = CoxPHFitter().fit(table, 'T', 'E')
  risk = x @ fitted.params_.to_numpy()
  horizons = list(np.sort(time[event == 1])[[5, 20]])  # lifelines interpolates between times.
  base = evaluation.baseline_survival(np.stack([time, event], 1), risk, horizons)
  expected = fitted.predict_survival_function(table[['a', 'b']], times=horizons).to_numpy().T
  np.testing.assert_allclose(base[None, :] ** np.exp(risk)[:, None], expected, atol=1e-12)


def test_calibration_is_undefined_past_the_test_sets_follow_up():
  y = np.array([[100.0, 1.0], [400.0, 0.0], [2000.0, 1.0]])
  view = evaluation.calibration(y, np.zeros(3), np.array([0.9, 0.8]), (365.0, 3000.0))
  assert view['predicted_survival_at_365'] == pytest.approx(0.9)
  assert view['km_survival_at_365'] == pytest.approx(2 / 3)
  assert math.isnan(view['predicted_survival_at_3000']) and math.isnan(view['km_survival_at_3000'])


def test_the_bootstraps_pairwise_cindex_equals_lifelines_with_ties():
  rng = np.random.default_rng(0)
  for _ in range(200):
    n = int(rng.integers(2, 40))
    time = rng.integers(0, 10, n).astype(float)
    event = (rng.random(n) < 0.5).astype(float)
    risk = rng.integers(0, 4, n).astype(float)
    try:
      expected = concordance_index(time, -risk, event)
    except ZeroDivisionError:  # No comparable pair.
      expected = math.nan
    got = evaluation._harrell(time, event, risk)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-12)
