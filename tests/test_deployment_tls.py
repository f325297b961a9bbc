"""Mutual TLS in front of a hospital's worker: consortium certificates in, everyone else out."""

import datetime
import socket

import pytest

from tests.deployment_fixtures import HospitalProcess
from tests.test_deployment import HOSPITALS, remote_config
from tff_med import experiment
from tff_med.data import heart_disease as heart_data
from tff_med.deployment import certificates, hospital, tls_identity, worker_link
from tff_med.deployment.federation import DeploymentError
from tff_med.errors import ConfigError

pytestmark = pytest.mark.slow  # hospital workers behind TLS, as subprocesses


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
  root = tmp_path_factory.mktemp('certs')
  certificates.make_consortium_certificates(
    str(root / 'ok'),
    ['coordinator', 'hospital', 'hungary'],
    hosts={'hospital': [*HOSPITALS, 'localhost'], 'hungary': ['localhost']},
  )
  certificates.make_consortium_certificates(str(root / 'rogue'), ['coordinator'])
  certificates.make_consortium_certificates(
    str(root / 'old'),
    ['coordinator'],
    valid_days=30,
    not_before=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=60),
  )
  return root


@pytest.fixture(scope='module')
def tls_worker(certs, tmp_path_factory):
  data = heart_data.write_shards(str(tmp_path_factory.mktemp('heart') / 'heart'))
  ok = certs / 'ok'
  worker = HospitalProcess(
    data, tls_cert=ok / 'hospital.pem', tls_key=ok / 'hospital.key', tls_ca=ok / 'ca.pem'
  )
  try:
    assert '(mutual TLS)' in worker.wait_ready()
    yield worker
  finally:
    worker.stop()


def tls_config(worker, cert_dir, ca_dir=None, **deployment):
  return remote_config(
    ','.join(f'{h}={worker.address}' for h in HOSPITALS),
    tls_cert=str(cert_dir / 'coordinator.pem'),
    tls_key=str(cert_dir / 'coordinator.key'),
    tls_ca=str((ca_dir or cert_dir) / 'ca.pem'),
    **deployment,
  )


def test_a_coordinator_with_a_consortium_certificate_trains(tls_worker, certs, tmp_path):
  config = tls_config(tls_worker, certs / 'ok')
  config.training.rounds = 1
  result = experiment.train(config, str(tmp_path), print_fn=lambda _: None)
  assert result.loop.rounds_completed == 1


def test_a_certificate_from_another_ca_is_refused(tls_worker, certs, tmp_path):
  config = tls_config(tls_worker, certs / 'rogue', ready_timeout=3.0)  # Consortium of one.
  with pytest.raises(DeploymentError, match='not ready within 3 s .*TLS handshake failed'):
    experiment.train(config, str(tmp_path), print_fn=lambda _: None)


def test_a_coordinator_without_a_certificate_is_refused_and_logged(tls_worker, tmp_path):
  config = remote_config(
    ','.join(f'{h}={tls_worker.address}' for h in HOSPITALS), ready_timeout=3.0
  )
  with pytest.raises(DeploymentError, match='not ready within 3 s'):
    experiment.train(config, str(tmp_path), print_fn=lambda _: None)
  assert 'Handshake failed' in tls_worker.log_text()  # The hospital sees the attempt.


def test_a_hospital_certificate_cannot_act_as_the_coordinator(tls_worker, certs, tmp_path):
  ok = certs / 'ok'
  config = tls_config(tls_worker, ok, ready_timeout=3.0)
  config.deployment.tls_cert = str(ok / 'hungary.pem')
  config.deployment.tls_key = str(ok / 'hungary.key')
  with pytest.raises(DeploymentError, match="not ready|certificate is for 'hungary'"):
    experiment.train(config, str(tmp_path), print_fn=lambda _: None)


def test_a_worker_whose_certificate_does_not_name_the_hospital_is_refused(
  tls_worker, certs, tmp_path
):
  # The coordinator expects hospital 'odd' at this address; the worker there presents a valid
  # consortium certificate, but for the heart hospitals: another member, not 'odd'.
  config = tls_config(tls_worker, certs / 'ok', ready_timeout=3.0)
  config.deployment.workers = f'odd={tls_worker.address}'
  with pytest.raises(DeploymentError, match='TLS handshake failed'):
    experiment.train(config, str(tmp_path / 'run'), print_fn=lambda _: None)


def test_a_hospital_certificate_must_name_the_hospitals_served(certs, tmp_path):
  data = heart_data.write_shards(str(tmp_path / 'heart'))
  ok = certs / 'ok'
  config = hospital.HospitalConfig(
    data,
    1,
    allow_unapproved=True,
    tls_cert=str(ok / 'hungary.pem'),
    tls_key=str(ok / 'hungary.key'),
    tls_ca=str(ok / 'ca.pem'),
  )
  with pytest.raises(ConfigError, match=r"does not name \['cleveland', 'switzerland'"):
    hospital.check(config)


def test_expired_certificates_are_refused_before_connecting(certs, tmp_path):
  old = certs / 'old'
  with pytest.raises(ConfigError, match='coordinator: certificate .*coordinator.pem expired on'):
    experiment.train(
      remote_config(
        'cleveland=localhost:1',
        tls_cert=str(old / 'coordinator.pem'),
        tls_key=str(old / 'coordinator.key'),
        tls_ca=str(old / 'ca.pem'),
      ),
      str(tmp_path),
      print_fn=lambda _: None,
    )
  config = hospital.HospitalConfig(
    str(tmp_path),
    1,
    tls_cert=str(old / 'coordinator.pem'),
    tls_key=str(old / 'coordinator.key'),
    tls_ca=str(old / 'ca.pem'),
  )
  with pytest.raises(ConfigError, match='hospital worker: certificate .* expired'):
    hospital.check(config)


def test_a_certificate_signed_by_another_ca_is_named_at_the_hospital(certs, tmp_path):
  config = hospital.HospitalConfig(
    str(tmp_path),
    1,
    tls_cert=str(certs / 'rogue' / 'coordinator.pem'),
    tls_key=str(certs / 'rogue' / 'coordinator.key'),
    tls_ca=str(certs / 'ok' / 'ca.pem'),
  )
  with pytest.raises(ConfigError, match='was not signed by the consortium CA'):
    hospital.check(config)


def test_a_thousand_idle_connections_do_not_lock_the_coordinator_out(tls_worker, certs):
  hospital.raise_file_limit()  # This test process holds the sockets.
  idle = []
  try:
    for _ in range(1100):
      idle.append(socket.create_connection(('localhost', tls_worker.port), timeout=5))
    ok = certs / 'ok'
    tls = tls_identity.TlsFiles(
      str(ok / 'coordinator.pem'), str(ok / 'coordinator.key'), str(ok / 'ca.pem')
    )
    assert worker_link.tls_preflight(tls_worker.address, tls, timeout=10, name='cleveland') is None
  finally:
    for s in idle:
      s.close()
