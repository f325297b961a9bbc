"""Plans a data steward approves: stable fingerprints, a readable summary, tampering refused."""

import dataclasses
import io
import json
import os
import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff
from absl import logging
from absl.testing import flagsaver
from tensorflow_federated.proto.v0 import executor_pb2
from tensorflow_federated.python.core.impl.executors import value_serialization

from configs import heart_disease, image_shards
from tests.deployment_fixtures import forget_compilations
from tests.shard_fixtures import write_digit_shards
from experiments import approve_plan
from tff_med.data import heart_disease as heart_data
from tff_med.deployment import (
  approvals,
  computations,
  fingerprint,
  hospital,
  plan,
  remote_data,
  summary,
)
from tff_med.deployment.shard_format import ShardFormat
from tff_med.deployment.gate import Gate, Refused
from tff_med.errors import ConfigError, ShardError
from tff_med.learning.build_cache import BuildCache

HOSPITALS = ['cleveland', 'hungary', 'switzerland', 'va_long_beach']
PINNED = os.path.join(os.path.dirname(__file__), 'data', 'heart_smoke_plan.json')


def heart_config():
  config = heart_disease.get_config('smoke')
  config.deployment.workers = ','.join(f'{h}=localhost:1' for h in HOSPITALS)
  return config


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  return plan.export_plan(heart_config(), str(tmp_path_factory.mktemp('plan') / 'heart'))


def test_the_heart_plans_fingerprints_are_the_committed_ones(exported):
  # The same config, code and versions give the same fingerprints on any machine
  # (a fresh clone in CI included); a change here means the hospitals must re-approve.
  with open(PINNED) as f:
    pinned = json.load(f)
  assert exported.fingerprints == pinned['fingerprints']
  assert exported.plan_id == pinned['plan_id']


def test_the_summary_says_what_leaves_each_hospital(exported):
  with open(os.path.join(exported.directory, plan.SUMMARY_FILE)) as f:
    text = f.read()
  assert 'the model update, 14 float32 values [[13, 1], [1]]' in text
  assert 'risk (Dense): output (None, 1), 14 parameters' in text
  assert 'features**: age, sex, trestbps' in text and '**label**: heart_disease' in text
  assert '**level**: none' in text  # No DP: said, with what it means.
  assert text.count('| training: round |') == 3  # Its three parts, each fingerprinted.


def test_fingerprints_ignore_tracing_history_but_not_constants():
  def parts(label):
    # A computation traced again may have the same proto; compiled again, TFF names its
    # parts anew, which the fingerprints must ignore too (as a fresh process does).
    forget_compilations()
    comp = ShardFormat(heart_data.FEATURES, label, 2).describe_computation()
    return [fingerprint.fingerprint(p) for _, p, _ in computations.worker_parts(comp)]

  first = parts('heart_disease')
  for _ in range(3):  # Every trace draws new TF function names and TFF variable names.
    tff.tensorflow.computation(lambda: tf.constant(1.0))
  assert parts('heart_disease') == first
  assert parts('sex') != first


def test_a_private_secure_plan_is_the_same_however_often_it_is_built(monkeypatch):
  # DP-SGD's gradients link forward and backward functions by name, in string
  # attributes numbered per process: the steward's approval and the coordinator trace
  # the computations after other traces than the exporter did, and must get the same
  # fingerprints. The second build traces again (not from the coordinator's cache).
  config = heart_config()
  config.privacy.update({'level': 'patient', 'noise_multiplier': 1.0})
  config.algorithm.aggregator = 'secure'
  first, _ = plan.build_content(config)
  monkeypatch.setattr(computations, '_BUILT', BuildCache())
  forget_compilations()
  again, _ = plan.build_content(config)
  assert first['computations'] == again['computations']
  text = summary.render(first)
  assert 'masked modulo 2^32' in text and 'secure aggregation' in text


def test_a_run_checked_against_its_plan_runs_the_plans_computations_with_its_noise():
  config = heart_config()
  config.privacy.update({'level': 'patient', 'noise_multiplier': 1.0})
  features = computations.plan_features(config)
  checked = computations.build(config, features, HOSPITALS)  # What check_against traced.
  noise = {h: 0.5 + k for k, h in enumerate(HOSPITALS)}
  privacy_plan = dataclasses.replace(
    computations.privacy_structure(config, len(HOSPITALS)), noise_multipliers=noise
  )
  run = computations.build(config, features, HOSPITALS, privacy_plan)
  assert run.process is checked.process and run.evaluation is checked.evaluation
  assert run.params.value_fn('switzerland', 0) == (np.float32(2.5), 2)
  assert checked.params.value_fn is not run.params.value_fn
  key = computations.build_key(config, features, HOSPITALS)
  config.seed += 1  # Another config (its initial weights differ) traces its own.
  assert computations.build_key(config, features, HOSPITALS) != key
  assert computations.build_key(config, features, HOSPITALS[:2]) != key


def _copy(exported, tmp_path):
  target = str(tmp_path / 'copy')
  shutil.copytree(exported.directory, target)
  return target


def _edit_json(path, edit):
  with open(path) as f:
    content = json.load(f)
  edit(content)
  with open(path, 'w') as f:
    json.dump(content, f)


def test_a_plan_edited_by_hand_is_refused(exported, tmp_path):
  copy = _copy(exported, tmp_path)
  _edit_json(
    os.path.join(copy, plan.PLAN_FILE),
    lambda c: c['summary']['algorithm'].update(client_learning_rate=0.001),
  )
  with pytest.raises(ConfigError, match='was edited after it was exported'):
    plan.load_plan(copy)


def test_a_plan_from_another_tff_version_is_refused(exported, tmp_path):
  copy = _copy(exported, tmp_path)

  def other_version(content):
    content['versions']['tensorflow_federated'] = '0.86.0'
    content['digest'] = plan.digest(content)  # Consistent, just not ours.

  _edit_json(os.path.join(copy, plan.PLAN_FILE), other_version)
  with pytest.raises(ConfigError, match=r'tensorflow_federated 0.86.0 \(here 0.87.0\)'):
    plan.load_plan(copy)


def test_a_swapped_computation_or_summary_is_refused(exported, tmp_path):
  copy = _copy(exported, tmp_path)
  victim = os.path.join(copy, plan.COMPUTATIONS_DIR, exported.fingerprints[0] + '.pb')
  other = os.path.join(copy, plan.COMPUTATIONS_DIR, exported.fingerprints[1] + '.pb')
  shutil.copy(other, victim)
  with pytest.raises(ConfigError, match='is not the computation the plan lists'):
    plan.load_plan(copy)
  copy = _copy(exported, tmp_path / 'again')
  with open(os.path.join(copy, plan.SUMMARY_FILE), 'a') as f:
    f.write('\nThe coordinator never sees your data.\n')
  with pytest.raises(ConfigError, match='summary.md was edited'):
    plan.load_plan(copy)


@pytest.mark.parametrize(
  'damage, message',
  [
    (lambda d: shutil.rmtree(d), 'does not exist'),
    (lambda d: os.remove(os.path.join(d, plan.PLAN_FILE)), 'cannot be read'),
    (lambda d: open(os.path.join(d, plan.PLAN_FILE), 'w').write('{'), 'is not valid JSON'),
    (lambda d: open(os.path.join(d, plan.PLAN_FILE), 'w').write('{}'), 'is not a tff_med plan'),
  ],
)
def test_a_missing_or_unreadable_plan_is_refused(exported, tmp_path, damage, message):
  copy = _copy(exported, tmp_path)
  damage(copy)
  with pytest.raises(ConfigError, match=message):
    plan.load_plan(copy)


def test_a_hospital_does_not_start_on_a_bad_approval(exported, tmp_path):
  data = heart_data.write_shards(str(tmp_path / 'data'))
  record = approvals.approve(exported.directory, str(tmp_path / 'approved'))
  config = hospital.HospitalConfig(data, 0, approved=str(tmp_path / 'approved'))
  _, found = hospital.check(config)
  assert found.plan_of(exported.fingerprints[0]) == exported.plan_id
  _edit_json(record, lambda c: c['computations'][0].update(fingerprint='0' * 64))
  with pytest.raises(ConfigError, match=f'approval {record} was edited'):
    hospital.check(config)
  with pytest.raises(ConfigError, match='approvals directory .* does not exist'):
    hospital.check(hospital.HospitalConfig(data, 0, approved=str(tmp_path / 'nowhere')))
  with pytest.raises(ConfigError, match='give --approved=DIR'):
    hospital.check(hospital.HospitalConfig(data, 0))


class _Terminal(io.StringIO):
  """A steward's terminal: what they type, as standard input."""

  def isatty(self):
    return True


def test_a_steward_approves_at_a_terminal_by_typing_yes(exported, tmp_path, monkeypatch):
  approved = tmp_path / 'approved'
  monkeypatch.setattr(logging, 'set_verbosity', lambda level: None)  # The session's stays.
  with flagsaver.flagsaver(plan=exported.directory, approved=str(approved), yes=False):
    monkeypatch.setattr(sys, 'stdin', io.StringIO(''))  # A pipe: nobody to ask.
    with pytest.raises(ConfigError, match='confirm at a terminal, or pass --yes'):
      approve_plan.main(['approve_plan'])
    monkeypatch.setattr(sys, 'stdin', _Terminal('sure\n'))
    with pytest.raises(ConfigError, match=f'plan {exported.plan_id} not approved'):
      approve_plan.main(['approve_plan'])
    assert not approved.exists()
    monkeypatch.setattr(sys, 'stdin', _Terminal('yes\n'))
    approve_plan.main(['approve_plan'])
  assert os.listdir(approved) == [f'{exported.plan_id}.json']


def _request(value, type_spec) -> bytes:
  proto, _ = value_serialization.serialize_value(value, type_spec)
  return executor_pb2.CreateValueRequest(value=proto).SerializeToString()


def test_the_gate_judges_every_value_a_coordinator_sends(exported, tmp_path):
  approvals.approve(exported.directory, str(tmp_path))
  gate = Gate(0, '127.0.0.1:1', ['cleveland'], approvals.Approvals(str(tmp_path)))
  try:
    weights = tff.TensorType(np.float32, [2])
    gate.check_value(_request(np.array([1.0, 2.0], np.float32), weights))  # Weights pass.
    text = tff.TensorType(np.str_)
    gate.check_value(_request(remote_data.client_input('cleveland', 'test', mean=[0.5]), text))
    for bad in ['elsewhere/train.csv|0|0||', '../cleveland/train.csv|0|0||', 'cleveland']:
      with pytest.raises(Refused, match='names no shard'):
        gate.check_value(_request(bad, text))
    at_clients = tff.FederatedType(np.str_, tff.CLIENTS)
    with pytest.raises(Refused, match='names no shard'):  # Nested in a federated value too.
      gate.check_value(_request(['cleveland/test.csv|0|0||', '/etc/passwd'], at_clients))
    described = ShardFormat(heart_data.FEATURES, 'heart_disease', 2).describe_computation()
    for _, proto, _ in computations.worker_parts(described):
      request = executor_pb2.CreateValueRequest(value=executor_pb2.Value(computation=proto))
      gate.check_value(request.SerializeToString())
    other = ShardFormat(heart_data.FEATURES, 'age', 2).describe_computation()
    *_, (_, proto, _) = computations.worker_parts(other)  # after_merge reads the shard.
    with pytest.raises(Refused, match='refuses computation'):
      request = executor_pb2.CreateValueRequest(value=executor_pb2.Value(computation=proto))
      gate.check_value(request.SerializeToString())
    dataset = tf.data.Dataset.range(3)
    with pytest.raises(Refused, match='refuses a sequence'):
      gate.check_value(_request(dataset, tff.SequenceType(np.int64)))
  finally:
    gate.stop()


def test_an_image_plan_names_its_image_shape_and_the_steward_checks_it(tmp_path):
  config = image_shards.get_config('smoke')
  config.data.num_classes, config.data.image_shape = 10, (8, 8, 1)
  config.deployment.workers = 'alpha=localhost:1,beta=localhost:1'
  exported = plan.export_plan(config, str(tmp_path / 'plan'))
  text = open(os.path.join(exported.directory, plan.SUMMARY_FILE)).read()
  assert 'images of 8x8x1 (64 values each)' in text and '1 channels (over every pixel)' in text
  root = write_digit_shards(tmp_path / 'digits', hospitals=('alpha', 'beta'))
  approvals.check_columns(exported, root, ['alpha', 'beta'])  # The shards fit: no error.
  cropped = tmp_path / 'cropped'  # The same hospitals' images, 4x4: not what the plan reads.
  for site in ('alpha', 'beta'):
    os.makedirs(cropped / site)
    for split in ('train', 'test'):
      with np.load(os.path.join(root, site, f'{split}.npz')) as shard:
        np.savez(cropped / site / f'{split}.npz', x=shard['x'][:, :4, :4], y=shard['y'])
  with pytest.raises(ShardError, match=r"hospital 'alpha', .*images are \(4, 4, 1\), not the"):
    approvals.check_columns(exported, str(cropped), ['alpha', 'beta'])
  config.data.image_shape = None
  with pytest.raises(ConfigError, match='data.image_shape'):
    plan.export_plan(config, str(tmp_path / 'none'))
