"""Every feature runs across real workers as in simulation: DP-SGD, attacks, missing values.

Two hospital workers on loopback (separate processes, two hospitals each) serve
heart shards with holes in them; each case trains the same config and seed
remotely and in simulation and compares the exported weights (1e-5).
"""

import csv
import os
import re
import tempfile

import pytest

from configs import heart_disease, image_shards
from tests.deployment_fixtures import (
  HospitalProcess,
  all_running,
  assert_same_model,
  split_heart_shards,
)
from tests.shard_fixtures import write_digit_shards
from tff_med import experiment
from tff_med.data import heart_disease as heart_data
from tff_med.errors import ConfigError, ShardError

pytestmark = pytest.mark.slow  # hospital workers as subprocesses

HOSPITALS = ['cleveland', 'hungary', 'switzerland', 'va_long_beach']
# (hospital, split, data row, column, cell): gaps a hospital's files really have.
HOLES = [
  ('cleveland', 'train', 3, 'chol', ''),
  ('cleveland', 'train', 11, 'age', '?'),
  ('hungary', 'train', 5, 'trestbps', 'NA'),
  ('switzerland', 'test', 2, 'thalach', 'nan'),
  ('va_long_beach', 'test', 4, 'oldpeak', ' '),
]


def _punch_holes(root: str) -> None:
  for hospital, split, row, column, cell in HOLES:
    path = os.path.join(root, hospital, f'{split}.csv')
    with open(path, newline='') as f:
      rows = list(csv.reader(f))
    rows[row][rows[0].index(column)] = cell
    with open(path, 'w', newline='') as f:
      csv.writer(f).writerows(rows)


@pytest.fixture(scope='module')
def holey_root(tmp_path_factory):
  root = heart_data.write_shards(str(tmp_path_factory.mktemp('heart') / 'heart'))
  _punch_holes(root)
  return root


@pytest.fixture(scope='module')
def workers(holey_root, tmp_path_factory):
  roots = split_heart_shards(
    holey_root,
    str(tmp_path_factory.mktemp('sites')),
    {'a': HOSPITALS[:2], 'b': HOSPITALS[2:]},
  )
  with all_running({s: HospitalProcess(roots[s]) for s in 'ab'}) as sites:
    yield {h: sites['a' if h in HOSPITALS[:2] else 'b'].address for h in HOSPITALS}


def _configs(root, workers, **settings):
  configs = []
  for remote in (False, True):
    config = heart_disease.get_config('smoke')
    config.training.rounds = 1  # Rounds after the first: tests/test_deployment.py.
    config.data.local_steps = 10  # Every composed path runs; equality needs no more steps.
    config.data.root = '/nonexistent/coordinator/has/no/data' if remote else root
    if remote:
      config.deployment.workers = ','.join(f'{h}={a}' for h, a in workers.items())
    for path, value in settings.items():
      block, name = path.split('__')
      config[block][name] = value
    configs.append(config)
  return configs


def _train_both(root, workers, tmp_path, **settings):
  sim_config, remote_config = _configs(root, workers, **settings)
  sim = experiment.train(sim_config, str(tmp_path / 'sim'), print_fn=lambda _: None)
  remote = experiment.train(remote_config, str(tmp_path / 'remote'), print_fn=lambda _: None)
  assert_same_model(str(tmp_path / 'remote'), str(tmp_path / 'sim'))
  for name in HOSPITALS + ['all']:
    assert remote.loop.final_eval[name]['loss'] == pytest.approx(
      sim.loop.final_eval[name]['loss'], abs=1e-5
    )
  return sim, remote


@pytest.mark.parametrize(
  'settings',
  [
    # Per-patient clipping and seeded noise in each hospital's worker; gaps dropped there.
    dict(privacy__level='patient', privacy__noise_multiplier=1.0, data__missing='drop_rows'),
    # An update attack across real workers; gaps filled with the hospital's training means.
    dict(attack__kind='sign_flip', attack__hospitals=('cleveland',), data__missing='impute_mean'),
  ],
  ids=['patient_dp+drop_rows', 'sign_flip+impute_mean'],  # Label flips: the image test.
)
def test_a_remote_run_ends_with_the_simulations_weights(settings, holey_root, workers, tmp_path):
  sim, remote = _train_both(holey_root, workers, tmp_path, **settings)
  assert remote.privacy == sim.privacy  # Epsilon per hospital, from the rows each reported.


def test_a_missing_value_under_the_error_policy_is_named_at_its_hospital(
  holey_root, workers, tmp_path
):
  _, config = _configs(holey_root, workers)
  with pytest.raises(ShardError) as raised:
    experiment.train(config, str(tmp_path / 'run'), print_fn=lambda _: None)
  message = str(raised.value)
  for part in ("'cleveland'", "'cleveland/train.csv'", "column 'chol'", 'row 3', 'drop_rows'):
    assert part in message, message
  assert not os.path.exists(tmp_path / 'run')  # Refused before anything is written.


def test_image_shards_train_remotely_as_in_simulation(tmp_path):
  root = write_digit_shards(tmp_path / 'digits')
  sites = {'a': ['alpha', 'beta'], 'b': ['delta', 'gamma']}
  roots = split_heart_shards(root, str(tmp_path / 'sites'), sites)  # Copies any shard files.
  with all_running({s: HospitalProcess(roots[s]) for s in sites}) as processes:
    addresses = {h: processes[s].address for s, group in sites.items() for h in group}
    configs = []
    for remote in (False, True):
      config = image_shards.get_config('smoke')
      config.training.rounds = 1
      config.data.root = '/nonexistent' if remote else root
      config.data.num_classes = 10
      config.data.image_shape = (8, 8, 1)
      config.attack.kind, config.attack.hospitals = 'label_flip', ('beta',)
      if remote:
        config.deployment.workers = ','.join(f'{h}={a}' for h, a in sorted(addresses.items()))
      configs.append(config)
    sim = experiment.train(configs[0], str(tmp_path / 'sim'), print_fn=lambda _: None)
    remote = experiment.train(configs[1], str(tmp_path / 'remote'), print_fn=lambda _: None)
  assert_same_model(str(tmp_path / 'remote'), str(tmp_path / 'sim'))
  assert remote.loop.final_eval['all']['accuracy'] == pytest.approx(
    sim.loop.final_eval['all']['accuracy'], abs=1e-6
  )
  assert not any(name.startswith('tff_med_npz_') for name in os.listdir(tempfile.gettempdir()))


@pytest.mark.parametrize(
  'settings, named',
  [
    (
      dict(
        attack__kind='label_flip',
        attack__hospitals=('hungary',),
        privacy__level='patient',
        privacy__noise_multiplier=1.0,
      ),
      "attack.kind='label_flip' with privacy.level='patient'",
    ),
    (dict(privacy__level='hospital', privacy__noise_multiplier=0.01), "privacy.level='hospital'"),
    (dict(runtime__engine='fused'), "runtime.engine='fused'"),
    (dict(data__source='npz'), 'data.image_shape'),
    (dict(data__missing='guess'), 'data.missing'),
    (dict(data__label='', data__event='event', data__time='time'), 'a survival study'),
  ],
)
def test_what_cannot_run_remotely_is_refused_naming_the_setting(
  settings, named, holey_root, tmp_path
):
  _, config = _configs(holey_root, {h: 'localhost:1' for h in HOSPITALS}, **settings)
  with pytest.raises(ConfigError, match=re.escape(named)):
    experiment.train(config, str(tmp_path / 'run'), print_fn=lambda _: None)
