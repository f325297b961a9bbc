"""The consortium's certificates: roles, identities, revocation and private keys kept private."""

import os
import stat

import pytest

from tff_med.deployment import certificates, tls_identity
from tff_med.errors import ConfigError


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
  root = tmp_path_factory.mktemp('certs')
  certificates.make_consortium_certificates(str(root), ['coordinator', 'cleveland', 'hungary'])
  return root


def auth_context(path):
  """What gRPC tells the gate about a TLS peer presenting the certificate at `path`."""
  with open(path, 'rb') as f:
    return {'x509_pem_cert': [f.read()]}


def test_only_the_coordinators_certificate_is_admitted_as_the_coordinator(certs):
  assert tls_identity.peer_problem(auth_context(certs / 'coordinator.pem'), 'coordinator') is None
  problem = tls_identity.peer_problem(auth_context(certs / 'hungary.pem'), 'coordinator')
  assert "certificate is for 'hungary', not the coordinator" in problem
  problem = tls_identity.peer_problem(auth_context(certs / 'hungary.pem'), 'hungary')
  assert 'not a client-only (coordinator) certificate' in problem  # Server-only usage.
  assert 'no certificate' in tls_identity.peer_problem({}, 'coordinator')


def test_a_hospital_certificate_names_its_hospital_and_is_server_only(certs):
  tls_identity.check_names(str(certs / 'cleveland.pem'), ['cleveland'])
  with pytest.raises(ConfigError, match=r"does not name \['hungary'\]"):
    tls_identity.check_names(str(certs / 'cleveland.pem'), ['cleveland', 'hungary'])
  with pytest.raises(ConfigError, match="does not name \\['coordinator'\\]"):
    tls_identity.check_names(str(certs / 'coordinator.pem'), ['coordinator'])


def test_a_revoked_coordinator_is_refused(certs, tmp_path):
  crl = str(tmp_path / 'revoked.pem')
  certificates.write_revocation_list(
    crl,
    str(certs / 'ca.pem'),
    str(certs / 'ca-private' / 'ca.key'),
    [str(certs / 'coordinator.pem')],
  )
  loaded = certificates.load_revocation_list(crl, str(certs / 'ca.pem'))
  problem = tls_identity.peer_problem(
    auth_context(certs / 'coordinator.pem'), 'coordinator', loaded
  )
  assert 'is revoked' in problem
  other = tmp_path / 'other'
  certificates.make_consortium_certificates(str(other), ['coordinator'])
  with pytest.raises(ConfigError, match='was not signed by the consortium CA'):
    certificates.load_revocation_list(crl, str(other / 'ca.pem'))


def test_private_keys_are_private_from_creation_and_the_ca_key_apart(certs, tmp_path, monkeypatch):
  for key in ['coordinator.key', 'cleveland.key', 'ca-private/ca.key']:
    assert stat.S_IMODE(os.stat(certs / key).st_mode) == 0o600
  assert stat.S_IMODE(os.stat(certs / 'ca-private').st_mode) == 0o700
  assert not os.path.exists(certs / 'ca.key')  # Not beside the keys that are handed out.
  created = []
  real_open = os.open

  def spying_open(path, flags, mode=0o777, **kwargs):
    created.append((os.path.basename(path), mode))
    return real_open(path, flags, mode, **kwargs)

  monkeypatch.setattr(os, 'open', spying_open)
  certificates.make_consortium_certificates(str(tmp_path / 'spied'), ['coordinator'])
  monkeypatch.undo()
  assert ('coordinator.key', 0o600) in created and ('ca.key', 0o600) in created


def test_a_planted_symbolic_link_is_not_followed(tmp_path):
  target = tmp_path / 'elsewhere.txt'
  target.write_text('precious')
  out = tmp_path / 'certs'
  out.mkdir()
  os.symlink(target, out / 'coordinator.key')
  with pytest.raises(ConfigError, match='a symbolic link is refused'):
    certificates.make_consortium_certificates(str(out), ['coordinator'])
  assert target.read_text() == 'precious'
