"""A curious coordinator against a hospital's gate: only approved computations run.

One worker started the README's way (`--approved=DIR`) serves the four heart
hospitals; its steward approved the smoke run's plan. Each test tries what a
coordinator that authenticated fine could try, and is refused.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from tests.deployment_fixtures import HospitalProcess, approve
from tests.test_deployment import HOSPITALS, remote_config, spec
from tff_med import experiment, runtime
from tff_med.data import heart_disease as heart_data
from tff_med.deployment import remote_data
from tff_med.deployment.shard_format import ShardFormat
from tff_med.deployment.federation import RemoteFederation
from tff_med.errors import ConfigError, DeploymentError

pytestmark = pytest.mark.slow  # a hospital worker as a subprocess

with open(os.path.join(os.path.dirname(__file__), 'data', 'heart_smoke_plan.json')) as _f:
  PINNED_ID = json.load(_f)['plan_id']  # The smoke config's plan, as test_plan.py pins it.
_REFUSED = r'the gate of cleveland, hungary, switzerland, va_long_beach refuses computation '


@pytest.fixture(scope='module')
def site(tmp_path_factory):
  """(worker, plan directory) with the smoke config's plan approved."""
  root = tmp_path_factory.mktemp('site')
  data = heart_data.write_shards(str(root / 'heart'))
  worker = HospitalProcess(data, approved=str(root / 'approved'))
  try:
    os.makedirs(root / 'approved')
    worker.wait_ready()
    config = remote_config(spec({h: worker.address for h in HOSPITALS}))
    approve(config, str(root / 'approved'), str(root / 'plan'))
    yield worker, str(root / 'plan')
  finally:
    worker.stop()


def _call_at_cleveland(worker, comp, arg):
  """Runs `comp(arg)` with cleveland's client placed on the worker; returns its result."""
  federation = RemoteFederation({'cleveland': worker.address}, call_timeout=60)
  with runtime.local_runtime():
    federation.connect()
    try:
      with federation.route(['cleveland']):
        return comp(arg)
    finally:
      federation.close()


def _stealing(target: str):
  """What a curious coordinator writes: a computation returning the file `target`."""

  @tff.tensorflow.computation(np.str_)
  def read_file(spec):
    del spec  # A well-formed client input gets past the input check; the path is built in.
    return tf.io.read_file(target)

  @tff.federated_computation(tff.FederatedType(np.str_, tff.CLIENTS))
  def steal(specs):
    return tff.federated_map(read_file, specs)

  return steal


@pytest.mark.parametrize('target', ['cleveland/train.csv', '/etc/os-release'])
def test_a_computation_reading_files_is_refused_and_nothing_leaves(site, target):
  worker, _ = site
  steal = _stealing(target)
  with pytest.raises(DeploymentError, match=_REFUSED + r'([0-9a-f]{16}): it is in no plan') as e:
    _call_at_cleveland(worker, steal, [remote_data.client_input('cleveland', 'train')])
  fingerprint = e.value.args[0].split('refuses computation ')[1][:16]
  assert fingerprint in worker.log_text()  # The hospital's log names what was refused.
  assert 'age,sex' not in str(e.value) and 'NAME=' not in str(e.value)


def test_an_approved_computation_with_one_constant_changed_is_refused(site):
  worker, _ = site
  # The approved describe computation, asking for another column's histogram.
  describe_age = ShardFormat(heart_data.FEATURES, 'age', 100).describe_computation()
  with pytest.raises(DeploymentError, match=_REFUSED):
    _call_at_cleveland(worker, describe_age, remote_data.client_input('cleveland', 'train'))
  approved_describe = ShardFormat(heart_data.FEATURES, 'heart_disease', 2).describe_computation()
  header, rows, histogram, bad_row, *_ = _call_at_cleveland(
    worker, approved_describe, remote_data.client_input('cleveland', 'train')
  )
  assert rows > 0 and bad_row == 0 and len(histogram) == 2  # The approved one runs.


@pytest.mark.parametrize(
  'name',
  [
    '../../../../etc/passwd',
    'cleveland/../../outside/train.csv|0|0||',
    '../outside/train.csv|0|0||',
    'elsewhere/train.csv|0|0||',  # Not in the approved plan.
    'cleveland/train.csv',
  ],
)
def test_shard_names_outside_the_validated_hospitals_are_refused(site, name):
  worker, _ = site
  approved_describe = ShardFormat(heart_data.FEATURES, 'heart_disease', 2).describe_computation()
  with pytest.raises(DeploymentError, match='refuses the input .* names no shard'):
    _call_at_cleveland(worker, approved_describe, name)


def test_an_unapproved_run_is_refused_before_the_first_round_naming_the_hospital(site, tmp_path):
  worker, _ = site
  config = remote_config(spec({h: worker.address for h in HOSPITALS}))
  config.algorithm.client_learning_rate = 0.02  # Not the plan the steward approved.
  lines = []
  with pytest.raises(DeploymentError, match=_REFUSED + '[0-9a-f]{16}.*set deployment.plan'):
    experiment.train(config, str(tmp_path), print_fn=lines.append)
  assert not any(line.startswith('round') for line in lines)  # Not even round 0's evaluation.


def test_a_run_that_differs_from_its_plan_names_what_changed(site, tmp_path):
  worker, plan_dir = site
  config = remote_config(spec({h: worker.address for h in HOSPITALS}), plan=plan_dir)
  config.algorithm.client_learning_rate = 0.02
  config.model.name = 'mlp'
  with pytest.raises(
    ConfigError,
    match=rf'plan {PINNED_ID}\); it differs in: algorithm.client_learning_rate, '
    r'leaves_the_hospital.per_round, model.layers, model.name, model.parameters',
  ):
    experiment.train(config, str(tmp_path), print_fn=lambda _: None)
