"""Hospitals' mask keys: signed at the hospital, and nothing but the consortium's is accepted."""

import base64
import json
import os
import shutil

import pytest

from tff_med.deployment import certificates, hospital_masks, mask_keys
from tff_med.deployment.hospital import HospitalConfig
from tff_med.errors import ConfigError
from tff_med.learning.secure import masks

SITES = ['cleveland', 'hungary', 'switzerland']


@pytest.fixture(scope='module')
def consortium(tmp_path_factory):
  """Certificates of a consortium and of a rogue CA, and each hospital's published key."""
  root = tmp_path_factory.mktemp('mask_keys')
  certificates.make_consortium_certificates(
    str(root / 'certs'), ['coordinator', *SITES], hosts={s: [s] for s in SITES}
  )
  certificates.make_consortium_certificates(
    str(root / 'rogue'), ['hungary'], hosts={'hungary': ['hungary']}
  )
  public = root / 'public'
  private = {}
  for site in SITES:
    private[site], published = mask_keys.make_key(
      site,
      str(root / f'private_{site}'),
      str(root / f'certs/{site}.pem'),
      str(root / f'certs/{site}.key'),
    )
    os.makedirs(public, exist_ok=True)
    shutil.copy(published, public)
  return root, private


def copy_public(consortium, tmp_path):
  root, _ = consortium
  target = tmp_path / 'public'
  shutil.copytree(root / 'public', target)
  return target


def test_published_keys_load_and_the_private_key_stays_private(consortium):
  root, private = consortium
  keys = mask_keys.load_public_keys(str(root / 'public'), str(root / 'certs/ca.pem'), SITES)
  assert sorted(keys) == SITES
  assert oct(os.stat(private['hungary']).st_mode & 0o777) == '0o600'
  key = mask_keys.load_private_key(private['hungary'], 'hungary', keys)
  assert masks.raw_public_key(key) == masks.raw_public_key(keys['hungary'])


def test_a_key_swapped_in_by_the_coordinator_is_refused(consortium, tmp_path):
  root, _ = consortium
  public = copy_public(consortium, tmp_path)
  path = public / 'hungary.mask.pub.json'
  record = json.loads(path.read_text())
  own = masks.raw_public_key(masks.generate_private_key())  # The coordinator's own key.
  record['public_key'] = base64.b64encode(own).decode()
  path.write_text(json.dumps(record))
  with pytest.raises(ConfigError, match="hospital 'hungary': the signature of .* does not hold"):
    mask_keys.load_public_keys(str(public), str(root / 'certs/ca.pem'), SITES)


def test_a_key_signed_under_another_ca_is_refused(consortium, tmp_path):
  root, _ = consortium
  public = copy_public(consortium, tmp_path)
  os.remove(public / 'hungary.mask.pub.json')
  mask_keys.make_key(
    'hungary',
    str(tmp_path / 'rogue'),
    str(root / 'rogue/hungary.pem'),
    str(root / 'rogue/hungary.key'),
  )
  shutil.copy(tmp_path / 'rogue/hungary.mask.pub.json', public)
  with pytest.raises(
    ConfigError, match="hospital 'hungary': the certificate .* not signed by the consortium CA"
  ):
    mask_keys.load_public_keys(str(public), str(root / 'certs/ca.pem'), SITES)


def test_a_key_published_under_another_hospitals_name_is_refused(consortium, tmp_path):
  root, _ = consortium
  public = copy_public(consortium, tmp_path)
  shutil.copy(public / 'cleveland.mask.pub.json', public / 'hungary.mask.pub.json')
  with pytest.raises(ConfigError, match="hospital 'hungary': .* is for 'cleveland'"):
    mask_keys.load_public_keys(str(public), str(root / 'certs/ca.pem'), SITES)
  with pytest.raises(ConfigError, match="names \\['cleveland'\\], not 'hungary'"):
    mask_keys.make_key(
      'hungary',
      str(tmp_path / 'x'),
      str(root / 'certs/cleveland.pem'),
      str(root / 'certs/cleveland.key'),
    )


def test_a_hospital_absent_from_the_key_directory_is_named(consortium, tmp_path):
  root, _ = consortium
  public = copy_public(consortium, tmp_path)
  os.remove(public / 'switzerland.mask.pub.json')
  with pytest.raises(ConfigError, match="hospital 'switzerland' has no public mask key"):
    mask_keys.load_public_keys(str(public), str(root / 'certs/ca.pem'), SITES)


def test_a_private_key_that_is_not_the_published_ones_pair_is_refused(consortium, tmp_path):
  root, private = consortium
  keys = mask_keys.load_public_keys(str(root / 'public'), str(root / 'certs/ca.pem'), SITES)
  with pytest.raises(ConfigError, match="hospital 'hungary': mask key .* not the pair"):
    mask_keys.load_private_key(private['cleveland'], 'hungary', keys)


class FakeApprovals:
  def __init__(self, secure):
    self._secure = set(secure)

  def secure_hospitals(self):
    return set(self._secure)


def worker_config(consortium, **changes):
  root, private = consortium
  fields = dict(
    data_root='unused',
    port=1,
    tls_cert=str(root / 'certs/hungary.pem'),
    tls_key=str(root / 'certs/hungary.key'),
    tls_ca=str(root / 'certs/ca.pem'),
    mask_key=private['hungary'],
    mask_public_keys=str(root / 'public'),
  )
  fields.update(changes)
  return HospitalConfig(**fields)


def test_a_worker_loads_the_keys_its_approved_secure_plans_need(consortium):
  keys = hospital_masks.load(worker_config(consortium), ['hungary'], FakeApprovals(SITES))
  assert keys.hospital == 'hungary' and sorted(keys.public_keys) == SITES


def test_a_worker_refuses_to_start_without_what_secure_aggregation_needs(consortium, tmp_path):
  with pytest.raises(ConfigError, match='approved plan uses secure aggregation'):
    hospital_masks.load(
      worker_config(consortium, mask_key='', mask_public_keys=''), ['hungary'], FakeApprovals(SITES)
    )
  with pytest.raises(ConfigError, match="hospital 'va_long_beach' has no public mask key"):
    hospital_masks.load(
      worker_config(consortium), ['hungary'], FakeApprovals([*SITES, 'va_long_beach'])
    )
  with pytest.raises(ConfigError, match='one hospital per worker'):
    hospital_masks.load(worker_config(consortium), ['hungary', 'cleveland'], FakeApprovals(SITES))
  with pytest.raises(ConfigError, match='give --tls_ca'):
    hospital_masks.load(worker_config(consortium, tls_ca=''), ['hungary'], FakeApprovals(SITES))
  assert (
    hospital_masks.load(
      worker_config(consortium, mask_key='', mask_public_keys=''), ['hungary'], FakeApprovals([])
    )
    is None
  )
