"""Hospitals that drop out: the rule, simulated faults, accounting, and the settings' checks."""

import json
import logging
import math

import numpy as np
import pytest

from configs import heart_disease
from tff_med import experiment
from tff_med.errors import ConfigError, DeploymentError, HospitalsUnavailable
from tff_med.learning.privacy import accounting, budget
from tff_med.run import attendance as attendance_lib
from tff_med.run import dropout, outputs

HOSPITALS = ['cleveland', 'hungary', 'switzerland', 'va_long_beach']


def test_a_schedule_names_rounds_ranges_and_seeded_probabilities():
  absent = dropout.schedule('hungary@2-3, hungary@5,switzerland@p0.5', HOSPITALS, seed=7)
  assert [('hungary' in absent(r)) for r in range(1, 7)] == [False, True, True, False, True, False]
  drawn = [('switzerland' in absent(r)) for r in range(1, 201)]
  assert drawn == [('switzerland' in absent(r)) for r in range(1, 201)]  # Same in every rerun.
  assert 70 < sum(drawn) < 130
  assert dropout.schedule(' ', HOSPITALS, seed=7) is None


@pytest.mark.parametrize(
  'spec, message',
  [
    ('hungary', "entry 'hungary': it has no hospital@rounds"),
    ('hungary@', 'it has no hospital@rounds'),
    ('hungary@x', "'x' is not a round"),
    ('hungary@3-2', 'must not run backwards'),
    ('hungary@0', 'rounds start at 1'),
    ('hungary@p1.5', r'probability must be in \[0, 1\]'),
    ('hungary@pz', "'z' is not a probability"),
    ('bern@2', "names 'bern', which is not a hospital of this study"),
  ],
)
def test_a_bad_schedule_is_refused_naming_the_entry(spec, message):
  with pytest.raises(ConfigError, match=message):
    dropout.schedule(spec, HOSPITALS, seed=0)


def _config(**deployment):
  config = heart_disease.get_config('smoke')
  config.deployment.update(deployment)
  return config


@pytest.mark.parametrize(
  'deployment, remote, message',
  [
    ({'min_hospitals': 0}, True, 'min_hospitals must be >= 1, got 0'),
    ({'min_hospitals': -2}, True, 'min_hospitals must be >= 1, got -2'),
    ({'min_hospitals': 2}, False, 'set on a simulation without faults to inject'),
    ({'simulate_dropout': 'hungary@2'}, True, 'simulate_dropout is for simulations'),
  ],
)
def test_dropout_settings_are_checked_before_any_work(deployment, remote, message):
  with pytest.raises(ConfigError, match=message):
    attendance_lib.check_settings(_config(**deployment), remote=remote)


def test_min_hospitals_above_the_hospitals_or_the_round_size_is_refused():
  config = _config(min_hospitals=5, simulate_dropout='hungary@2')
  with pytest.raises(ConfigError, match='min_hospitals=5 is more than the 4 hospitals'):
    attendance_lib.from_config(config, HOSPITALS)
  config = _config(min_hospitals=3, simulate_dropout='hungary@2')
  config.algorithm.clients_per_round = 2
  with pytest.raises(ConfigError, match='more than algorithm.clients_per_round=2'):
    attendance_lib.check_settings(config, remote=False)


class _FlakyRoute:
  """A route whose workers of `failing` fail the first call that includes them."""

  def __init__(self, failing):
    self.failing = set(failing)
    self.calls = []

  def __call__(self, hospitals):
    self.calls.append(list(hospitals))
    failed = sorted(self.failing & set(hospitals))
    if failed:
      self.failing -= set(failed)
      raise HospitalsUnavailable(failed, 'connection lost')
    return _nothing()


class _nothing:
  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return False


def test_a_round_is_redone_without_the_hospital_that_failed_in_it():
  route = _FlakyRoute(['b'])
  attendance = attendance_lib.Attendance(['a', 'b', 'c'], min_hospitals=2, route=route)
  applied = []
  result, hospitals = attendance.train(1, ['a', 'b', 'c'], lambda hs: applied.append(hs) or 'ok')
  assert (result, hospitals) == ('ok', ['a', 'c'])
  assert applied == [['a', 'c']]  # The failed attempt applied nothing.
  assert route.calls == [['a', 'b', 'c'], ['a', 'c']]
  assert attendance.round_metrics(1) == {outputs.HOSPITALS_IN_ROUND: 2}
  restored = attendance_lib.Attendance(['a', 'b', 'c'])
  restored.restore(attendance.to_array())
  assert restored.summary()['rounds_missed'] == {'a': [], 'b': [1], 'c': []}


def test_a_round_with_too_few_hospitals_stops_the_run_naming_them():
  attendance = attendance_lib.Attendance(['a', 'b', 'c'], route=_FlakyRoute(['c']))
  with pytest.raises(DeploymentError, match=r'round 4: only 2 of 3 .*c: connection lost.*rerun'):
    attendance.train(4, ['a', 'b', 'c'], lambda hs: None)


def test_a_round_near_the_deadline_is_warned_about_with_its_time(caplog, tmp_path):
  attendance = attendance_lib.Attendance(['a'], deadline=10.0)
  with caplog.at_level(logging.WARNING):
    attendance.check_deadline(3, 4.0)
    attendance.check_deadline(4, 7.5)
  assert 'Round 4 took 7.5 s, more than half the round deadline' in caplog.text
  assert 'Round 3' not in caplog.text
  metrics = tmp_path / outputs.METRICS_CSV  # A rerun with a shorter deadline than before.
  metrics.write_text(f'key,{outputs.ROUND_SECONDS}\n0,\n1,2.5\n2,31.0\n3,3.0\n')
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    attendance_lib.Attendance(['a'], deadline=30.0).check_past_rounds(str(metrics))
  assert (
    'Round 2 took 31.0 s, more than half the round deadline (deployment.call_timeout = 30 s)'
    in caplog.text
  )


def test_epsilon_counts_the_rounds_a_hospital_took_part_in():
  plan = budget.PrivacyPlan(
    'patient', 1e-3, 'rdp', {'a': 1.0, 'b': 1.0}, {'a': 0.1, 'b': 0.1}, {'a': 5, 'b': 5},
    {'a': [0, 1, 2, 3], 'b': [0, 1, 2, 3]},
  )  # fmt: skip
  plan.observe({1: ['a', 'b'], 2: ['a', 'b']}, {1: ['a', 'b'], 2: ['a']})
  assert plan.summary(3)['steps'] == {'a': 15, 'b': 10}
  assert plan.epsilons(3)['b'] == pytest.approx(accounting.epsilon(0.1, 10, 1.0, 1e-3, 'rdp'))
  assert 'spent nothing in the rounds it missed' in plan.summary(3)['note']
  hospital = budget.PrivacyPlan('hospital', 1e-3, 'rdp', {'all': 0.3}, {'all': 1.0}, {}, {})
  hospital.observe({1: ['a', 'b']}, {1: ['a']})
  assert 'same noise to a sum of fewer updates' in hospital.summary(1)['note']


@pytest.mark.slow  # Patient-level DP-SGD and a rerun: 15 s.
def test_a_simulated_dropout_leaves_the_hospital_out_and_its_evaluation_missing(tmp_path):
  config = _config(min_hospitals=3, simulate_dropout='hungary@2')
  config.training.rounds = 3
  config.privacy.update(level='patient', noise_multiplier=1.0)
  config.data.local_steps = 2
  lines = []
  result = experiment.train(config, str(tmp_path), print_fn=lines.append)
  saved = json.load(open(tmp_path / outputs.RESULTS_JSON))
  assert saved['participation']['rounds_missed']['hungary'] == [2]
  assert saved['privacy']['steps'] == {
    'cleveland': 6,
    'hungary': 4,
    'switzerland': 6,
    'va_long_beach': 6,
  }
  assert 'eval AUC missing (round 2)  missing: hungary' in lines[2]
  assert not math.isnan(result.loop.final_eval['hungary']['loss'])
  again = experiment.train(config, str(tmp_path), print_fn=lambda _: None)  # Resumes at the end.
  assert again.loop.resumed_from == 3
  assert json.load(open(tmp_path / outputs.RESULTS_JSON))['participation'] == saved['participation']


def test_a_simulated_dropout_without_min_hospitals_stops_as_a_real_one(tmp_path):
  config = _config(simulate_dropout='switzerland@2')
  with pytest.raises(DeploymentError, match=r'round 2: only 3 of 4 .*switzerland: absent'):
    experiment.train(config, str(tmp_path), print_fn=lambda _: None)


def test_the_final_table_says_who_was_out_of_the_last_evaluation(tmp_path):
  config = _config(min_hospitals=2, simulate_dropout='va_long_beach@2')
  result = experiment.train(config, str(tmp_path), print_fn=lambda _: None)
  assert np.isnan(result.loop.final_eval['va_long_beach']['loss'])
  assert np.isnan(result.loop.final_eval['all']['loss'])
  assert 'Out of the final evaluation (metrics missing): va_long_beach.' in result.table
