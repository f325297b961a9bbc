"""Hospitals that drop out of a remote run: three workers on loopback, killed, hung, restarted."""

import csv
import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from configs import heart_disease
from tests.deployment_fixtures import (
  HospitalProcess,
  all_running,
  assert_same_model,
  split_heart_shards,
)
from tff_med import experiment
from tff_med.data import heart_disease as heart_data
from tff_med.errors import DeploymentError
from tff_med.run import outputs

pytestmark = pytest.mark.slow  # hospital workers as subprocesses

SITES = ['cleveland', 'hungary', 'va_long_beach']


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
  """One data directory per hospital, and 'sim' with all three (for the simulation)."""
  source = heart_data.write_shards(str(tmp_path_factory.mktemp('heart') / 'heart'))
  groups = {h: [h] for h in SITES} | {'sim': SITES}
  return split_heart_shards(source, str(tmp_path_factory.mktemp('sites')), groups)


@pytest.fixture(scope='module')
def sites(roots):
  """A worker per hospital, each a separate process over its own data directory.

  A test that kills a worker starts it again (`restart`) before it ends.
  """
  with all_running({h: HospitalProcess(roots[h]) for h in SITES}) as processes:
    yield processes


def restart(sites, roots, hospital: str) -> None:
  """Starts `hospital`'s worker again on its port, after a crash, and waits until it is ready."""
  sites[hospital].stop()
  sites[hospital] = HospitalProcess(roots[hospital], port=sites[hospital].port)
  sites[hospital].wait_ready()


def remote_config(sites, rounds: int, **deployment):
  config = heart_disease.get_config('smoke')
  config.data.root = '/nonexistent/coordinator/has/no/data'
  config.deployment.workers = ','.join(f'{h}={p.address}' for h, p in sites.items())
  config.deployment.update({'probe_timeout': 2.0, **deployment})
  config.training.rounds = rounds
  config.training.checkpoint_every = 1
  return config


def kill_during_round(worker: HospitalProcess, round_num: int, rounds: int):
  """A print_fn that kills `worker` while round `round_num` is in flight.

  At the progress line of the round before, the worker is stopped (SIGSTOP), so
  the next round's call reaches it and waits; a second later it is killed.
  """

  def on_line(line):
    if line.startswith(f'round {round_num - 1}/{rounds} '):
      worker.process.send_signal(signal.SIGSTOP)
      threading.Timer(1.0, worker.process.send_signal, [signal.SIGKILL]).start()

  return on_line


def read_metrics(workdir: str) -> dict[int, dict]:
  with open(os.path.join(workdir, outputs.METRICS_CSV)) as f:
    return {int(row['key']): row for row in csv.DictReader(f)}


def test_a_hospital_killed_mid_round_is_left_out_until_it_rejoins(sites, roots, tmp_path):
  config = remote_config(sites, rounds=5, min_hospitals=2)
  kill = kill_during_round(sites['hungary'], 2, 5)

  def on_line(line):
    kill(line)
    if line.startswith('round 3/5 '):  # Back after missing rounds 2 and 3.
      restart(sites, roots, 'hungary')

  lines = []
  experiment.train(
    config, str(tmp_path / 'remote'), print_fn=lambda line: (lines.append(line), on_line(line))
  )
  participation = json.load(open(tmp_path / 'remote' / outputs.RESULTS_JSON))['participation']
  assert participation['rounds_taken_part']['hungary'] == [1, 4, 5]
  assert participation['rounds_missed'] == {'cleveland': [], 'hungary': [2, 3], 'va_long_beach': []}
  rows = read_metrics(str(tmp_path / 'remote'))
  assert [int(rows[r][outputs.HOSPITALS_IN_ROUND]) for r in range(1, 6)] == [3, 2, 2, 3, 3]
  assert [int(rows[r][outputs.MISSING_PREFIX + 'hungary']) for r in range(1, 6)] == [0, 1, 1, 0, 0]
  for r in (2, 3):  # Missing, never the last value seen.
    assert np.isnan(float(rows[r][outputs.eval_key('hungary', 'loss')]))
    assert np.isnan(float(rows[r][outputs.eval_key('all', 'loss')]))
    assert not np.isnan(float(rows[r][outputs.eval_key('cleveland', 'loss')]))
  assert 'missing: hungary' in lines[2] and 'hungary missed rounds 2, 3' in lines[-1]

  simulated = heart_disease.get_config('smoke')
  simulated.data.update(source='csv', root=roots['sim'])  # These three hospitals only.
  simulated.training.rounds = 5
  simulated.deployment.update(min_hospitals=2, simulate_dropout='hungary@2-3')
  experiment.train(simulated, str(tmp_path / 'sim'), print_fn=lambda _: None)
  assert_same_model(str(tmp_path / 'remote'), str(tmp_path / 'sim'))


def test_without_min_hospitals_a_killed_hospital_stops_the_run_and_a_rerun_resumes(
  sites, roots, tmp_path
):
  config = remote_config(sites, rounds=3)
  kill = kill_during_round(sites['hungary'], 2, 3)
  began = time.monotonic()
  with pytest.raises(DeploymentError, match=r'round 2: only 2 of 3 .*hungary: the worker at'):
    experiment.train(config, str(tmp_path / 'run'), print_fn=kill)
  assert time.monotonic() - began < 60
  checkpoints = os.listdir(tmp_path / 'run' / 'checkpoints')
  assert checkpoints == ['program_state_1']  # Round 2 was not applied.
  restart(sites, roots, 'hungary')
  result = experiment.train(config, str(tmp_path / 'run'), print_fn=lambda _: None)
  assert result.loop.resumed_from == 1 and result.loop.rounds_completed == 3
  taken = json.load(open(tmp_path / 'run' / outputs.RESULTS_JSON))['participation']
  assert taken['rounds_taken_part']['hungary'] == [1, 2, 3]


def test_a_hung_hospital_is_dropped_at_the_round_deadline_and_nothing_is_left_behind(
  sites, tmp_path
):
  threads_before = threading.active_count()
  config = remote_config(sites, rounds=3, min_hospitals=2, call_timeout=8.0)
  hungary = sites['hungary']
  stopped_at = []

  def hang_after_round_1(line):
    if line.startswith('round 1/3 '):
      hungary.process.send_signal(signal.SIGSTOP)  # Alive, but it never answers.
      stopped_at.append(time.monotonic())

  try:
    experiment.train(config, str(tmp_path / 'run'), print_fn=hang_after_round_1)
  finally:
    hungary.process.send_signal(signal.SIGCONT)
  waited = time.monotonic() - stopped_at[0]
  # Round 2 waits out its deadline (8 s) and is redone; round 3 waits a probe (2 s).
  assert 8 < waited < 8 + 2 + 25
  participation = json.load(open(tmp_path / 'run' / outputs.RESULTS_JSON))['participation']
  assert participation['rounds_missed']['hungary'] == [2, 3]
  assert participation['absent_at_final_evaluation'] == ['hungary']
  assert not [t for t in threading.enumerate() if t.name == 'tff-call']
  assert threading.active_count() <= threads_before
