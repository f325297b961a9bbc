"""Remote hospitals on loopback: data stays put, same answer as simulation, faults named."""

import collections
import os
import socket
import time

import pytest
import tensorflow_federated as tff

from configs import heart_disease
from tests.deployment_fixtures import (
  HospitalProcess,
  all_running,
  assert_same_model,
  approve,
  forget_compilations,
  split_heart_shards,
)
from tff_med import experiment, runtime
from tff_med.data import heart_disease as heart_data
from tff_med.deployment import (
  addresses,
  hospital,
  remote_data,
  schema,
  worker_namespace,
)
from tff_med.deployment.shard_format import ShardFormat
from tff_med.deployment.federation import DeploymentError, RemoteFederation
from tff_med.errors import ConfigError, ShardError

pytestmark = pytest.mark.slow  # hospital workers as subprocesses

HOSPITALS = ['cleveland', 'hungary', 'switzerland', 'va_long_beach']


@pytest.fixture(scope='module')
def heart_root(tmp_path_factory):
  return heart_data.write_shards(str(tmp_path_factory.mktemp('heart') / 'heart'))


@pytest.fixture(scope='module')
def approved(tmp_path_factory):
  """The approvals directory of workers a and b (their data steward's)."""
  return str(tmp_path_factory.mktemp('approved'))


@pytest.fixture(scope='module')
def workers(heart_root, approved, tmp_path_factory):
  """Workers a and b (two hospitals each, approved plans only); c with a disagreeing shard
  and dev (cleveland again) admit any computation (the development flag)."""
  roots = split_heart_shards(
    heart_root,
    str(tmp_path_factory.mktemp('sites')),
    {
      'a': ['cleveland', 'hungary'],
      'b': ['switzerland', 'va_long_beach'],
      'c': ['cleveland'],
      'dev': ['cleveland'],
    },
  )
  odd = os.path.join(roots['c'], 'cleveland')
  os.rename(odd, os.path.join(roots['c'], 'odd'))
  for split in ('train', 'test'):
    path = os.path.join(roots['c'], 'odd', f'{split}.csv')
    lines = open(path).read().splitlines()
    with open(path, 'w') as f:
      f.write('\n'.join([lines[0] + ',extra'] + [line + ',1' for line in lines[1:]]) + '\n')
  processes = {
    name: HospitalProcess(root, approved=approved if name in 'ab' else '')
    for name, root in roots.items()
  }
  with all_running(processes):
    yield processes


def remote_config(workers_spec: str, **deployment):
  config = heart_disease.get_config('smoke')
  config.data.root = '/nonexistent/coordinator/has/no/data'
  config.deployment.workers = workers_spec
  config.deployment.update(deployment)
  return config


def spec(mapping: dict) -> str:
  return ','.join(f'{h}={a}' for h, a in mapping.items())


def _count_compilations(monkeypatch) -> collections.Counter:
  """(compiler, computation) -> times TFF's compilers ran on it from now on."""
  forget_compilations()
  counts = collections.Counter()
  for name in ('compile_to_mergeable_comp_form', 'desugar_and_transform_to_native'):
    compiler = getattr(tff.backends.native, name)

    def counted(comp, compiler=compiler, name=name):
      counts[name, hash(comp)] += 1
      return compiler(comp)

    monkeypatch.setattr(tff.backends.native, name, counted)
  return counts


def test_an_approved_plan_runs_remotely_as_in_simulation_without_the_coordinator_reading_data(
  workers, approved, heart_root, tmp_path, monkeypatch
):
  a, b = workers['a'].address, workers['b'].address
  config = remote_config(spec(dict(zip(HOSPITALS, [a, a, b, b], strict=True))))
  compilations = _count_compilations(monkeypatch)
  approve(config, approved, str(tmp_path / 'plan'))
  lines = []
  remote = experiment.train(config, str(tmp_path / 'remote'), print_fn=lines.append)
  assert not os.path.exists('/nonexistent')
  # The plan's check, each route and each worker's link share one compilation of each.
  assert compilations and max(compilations.values()) == 1
  monkeypatch.undo()
  simulated_config = heart_disease.get_config('smoke')
  simulated_config.data.root = heart_root
  simulated = experiment.train(simulated_config, str(tmp_path / 'sim'), print_fn=lambda _: None)
  assert_same_model(str(tmp_path / 'remote'), str(tmp_path / 'sim'))
  for name in HOSPITALS + ['all']:
    for metric in ('loss', 'accuracy'):
      assert remote.loop.final_eval[name][metric] == pytest.approx(
        simulated.loop.final_eval[name][metric], abs=1e-5
      )
  assert 'switzerland: AUC undefined' in lines[-1]  # Learned from the label histogram.
  assert 'admitted (plan' in workers['a'].log_text()
  assert 'UNAPPROVED' not in workers['a'].log_text()


def test_a_worker_without_the_hospitals_shard_is_named(workers, tmp_path):
  config = remote_config(spec({'cleveland': workers['c'].address}))
  with pytest.raises(DeploymentError, match='hospital cleveland: its worker at .* has no shard'):
    experiment.train(config, str(tmp_path), print_fn=lambda _: None)


def test_a_development_worker_says_so_for_every_computation_it_admits(workers):
  assert 'WARNING: ANY computation admitted' in workers['dev'].wait_ready()
  federation = RemoteFederation({'cleveland': workers['dev'].address})
  federation.connect()
  try:
    describe = ShardFormat(heart_data.FEATURES, 'heart_disease', 2).describe_computation()
    schema.fetch_schema(federation, heart_disease.get_config().data, describe, heart_data.FEATURES)
  finally:
    federation.close()
  assert 'UNAPPROVED computation' in workers['dev'].log_text()


def test_hospitals_whose_columns_disagree_are_refused(workers, tmp_path):
  config = remote_config(spec({'cleveland': workers['dev'].address, 'odd': workers['c'].address}))
  with pytest.raises(
    ShardError,
    match=r"hospital 'odd', file 'odd/train.csv': columns differ from those of the other 2 "
    r"shard files: missing \[\], extra \['extra'\]",
  ):
    experiment.train(config, str(tmp_path), print_fn=lambda _: None)


@pytest.mark.parametrize(
  'label, num_classes, message',
  [
    ('age', 2, r"file 'cleveland/train.csv', column 'age', row 1: label is missing or not one of"),
    ('oldpeak', 9, r"file 'cleveland/train.csv', column 'oldpeak', row 1: .*num_classes=9\)"),
    ('outcome', 2, r"file 'cleveland/train.csv': label column 'outcome' not found"),
  ],
)
def test_the_label_is_the_studys_choice_checked_at_the_hospital(
  workers, tmp_path, label, num_classes, message
):
  # The workers were started without a label: each plan names its own.
  config = remote_config(spec({'cleveland': workers['dev'].address}))
  config.data.label, config.data.num_classes = label, num_classes
  with pytest.raises(ShardError, match=r"hospital 'cleveland', " + message):
    experiment.train(config, str(tmp_path), print_fn=lambda _: None)
  assert not os.path.exists(tmp_path / 'config.json')  # Refused before writing anything.


def test_a_worker_serves_whichever_label_the_plan_names(workers):
  federation = RemoteFederation({'cleveland': workers['dev'].address})
  federation.connect()
  try:
    data_config = heart_disease.get_config().data
    data_config.label = 'sex'
    features = tuple(c for c in (*heart_data.FEATURES, heart_data.LABEL) if c != 'sex')
    describe = ShardFormat(features, 'sex', 2).describe_computation()
    found = schema.fetch_schema(federation, data_config, describe, features)
  finally:
    federation.close()
  assert 'heart_disease' in found.feature_names and 'sex' not in found.feature_names
  assert found.label_counts['cleveland']['train'].sum() == found.rows['cleveland']['train']


def test_a_worker_that_is_not_running_is_named_with_the_reason(tmp_path):
  config = remote_config(f'cleveland=localhost:{runtime.free_port()}', ready_timeout=1.0)
  with pytest.raises(DeploymentError, match=r'cannot connect: Connection refused.*own console'):
    experiment.train(config, str(tmp_path), print_fn=lambda _: None)


def test_a_worker_that_never_answers_fails_fast(tmp_path):
  config = remote_config(f'cleveland=localhost:{runtime.free_port()}', ready_timeout=2.0)
  began = time.monotonic()
  with pytest.raises(DeploymentError, match='worker of cleveland at .* not ready within 2 s'):
    experiment.train(config, str(tmp_path), print_fn=lambda _: None)
  assert time.monotonic() - began < 20


@pytest.mark.parametrize(
  'bad, message',
  [
    ('cleveland', 'must be hospital=host:port'),
    ('cleveland=localhost', 'must be host:port'),
    ('cleveland=localhost:http', 'must be host:port'),
    ('cleveland=localhost:70000', 'must be in 1..65535'),
    ('cleveland=a:1,cleveland=b:2', "'cleveland' is named twice"),
    ('=a:1', 'must be hospital=host:port'),
    ('../outside/x=a:1', 'must be a plain directory name'),
    ('..=a:1', 'must be a plain directory name'),
  ],
)
def test_malformed_worker_lists_are_refused(bad, message):
  with pytest.raises(ConfigError, match=message):
    addresses.parse_workers(bad)


def test_a_hospital_worker_on_a_port_in_use_is_refused(heart_root):
  with socket.socket() as taken:
    taken.bind(('', 0))
    port = taken.getsockname()[1]
    config = hospital.HospitalConfig(heart_root, port, allow_unapproved=True)
    with pytest.raises(ConfigError, match=f'port {port} cannot be used'):
      hospital.check(config)


@pytest.mark.skipif(not worker_namespace.available(), reason='no network namespaces here')
def test_the_raw_worker_port_is_unreachable_from_outside_its_namespace(heart_root):
  config = hospital.HospitalConfig(heart_root, runtime.free_port(), allow_unapproved=True)
  worker = hospital.HospitalWorker(config)
  worker.start()
  try:
    assert 'the TFF worker in its own network namespace' in worker.ready_line()
    with pytest.raises(ConnectionRefusedError):  # Nothing listens on the machine's network.
      socket.create_connection(('127.0.0.1', worker.worker_port), timeout=5)
    federation = RemoteFederation({'cleveland': f'localhost:{config.port}'})
    federation.connect()  # Through the gate, the worker answers.
    try:
      with federation.route(['cleveland']):
        describe = ShardFormat(heart_data.FEATURES, 'heart_disease', 2).describe_computation()
        _, rows, *_ = describe(remote_data.client_input('cleveland', 'train'))
    finally:
      federation.close()
    assert rows > 0
  finally:
    worker.stop()


def test_without_isolation_the_hospital_is_told_to_close_the_raw_port(heart_root):
  config = hospital.HospitalConfig(
    heart_root, runtime.free_port(), allow_unapproved=True, isolation='none'
  )
  worker = hospital.HospitalWorker(config)
  worker.start()
  try:
    assert f'CLOSE port {worker.worker_port} to the network' in worker.ready_line()
  finally:
    worker.stop()
