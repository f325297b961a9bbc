"""Secure aggregation's parts: masks that cancel and look uniform, the masked mean, the checks."""

import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff
from cryptography.hazmat.primitives.asymmetric import x25519
from scipy import stats

from configs import heart_disease
from tff_med.errors import ConfigError
from tff_med.learning.secure import aggregator, masks, settings

HOSPITALS = ['cleveland', 'hungary', 'switzerland', 'va_long_beach']
M = 2**32


@pytest.fixture(scope='module')
def keys():
  # Fixed keys, so the statistical checks below (uniformity, correlation) test fixed masks
  # and cannot fail by chance on another run; fresh keys are tested where keys are made.
  private = {
    h: x25519.X25519PrivateKey.from_private_bytes(hashlib.sha256(h.encode()).digest())
    for h in HOSPITALS
  }
  return private, {h: k.public_key() for h, k in private.items()}


def round_masks(keys, peers, session='0123456789abcdef', round_num=3, size=5000):
  private, public = keys
  return {
    h: masks.mask(private[h], public, masks.request(h, session, round_num, size, peers))
    for h in peers
  }


def test_the_masks_of_a_round_cancel_and_each_looks_uniform(keys):
  values = round_masks(keys, HOSPITALS)
  assert np.all(sum(v.astype(np.uint64) for v in values.values()) % M == 0)
  for v in values.values():
    assert v.min() >= 0 and v.max() < M
    high = v >> 28  # The top 4 bits: 16 equally likely bins if uniform.
    assert stats.chisquare(np.bincount(high, minlength=16)).pvalue > 1e-4
  a, b = values['cleveland'], values['hungary']
  assert abs(np.corrcoef(a, b)[0, 1]) < 0.06


def test_a_redone_round_another_round_or_session_gets_fresh_masks(keys):
  first = round_masks(keys, HOSPITALS)['cleveland']
  without = round_masks(keys, ['cleveland', 'hungary', 'va_long_beach'])
  assert np.all(sum(v.astype(np.uint64) for v in without.values()) % M == 0)
  for other in (
    without['cleveland'],
    round_masks(keys, HOSPITALS, round_num=4)['cleveland'],
    round_masks(keys, HOSPITALS, session='fedcba9876543210')['cleveland'],
  ):
    assert np.mean(other == first) < 0.001


def test_a_mask_is_refused_for_one_hospital_an_outsider_or_an_unknown_peer(keys):
  private, public = keys
  with pytest.raises(masks.MaskError, match='one hospital'):
    masks.mask(private['hungary'], public, masks.request('hungary', 'a' * 16, 1, 4, ['hungary']))
  with pytest.raises(masks.MaskError, match='not in'):
    masks.mask(private['hungary'], public, masks.request('hungary', 'a' * 16, 1, 4, HOSPITALS[2:]))
  stranger = {h: k for h, k in public.items() if h != 'cleveland'}
  with pytest.raises(masks.MaskError, match='no public key of cleveland'):
    masks.mask(private['hungary'], stranger, masks.request('hungary', 'a' * 16, 1, 4, HOSPITALS))


def test_a_token_is_a_plain_path_inside_the_masks_directory():
  req = masks.request('hungary', 'ab' * 8, 12, 14, ['va_long_beach', 'hungary'])
  assert req.token() == 'masks/hungary/abababababababab/12/14/hungary+va_long_beach'
  assert masks.parse_token(req.token()) == req
  assert masks.parse_token('masks/hungary/abababababababab/1/4/hungary').peers == ('hungary',)
  for bad in (
    '/masks/hungary/abababababababab/12/14/hungary+va_long_beach',
    'masks/../abababababababab/12/14/hungary+va_long_beach',
    'masks/hungary/abababababababab/12/14/..+hungary',
    'masks/hungary/ABABABABABABABAB/12/14/hungary+va_long_beach',
    'masks/hungary/abababababababab/12/14/hungary+a/b',
  ):
    assert masks.parse_token(bad) is None, bad


def test_the_writer_writes_each_mask_once_where_the_token_says(keys, tmp_path):
  private, public = keys
  writer = masks.MaskWriter('hungary', private['hungary'], public, str(tmp_path))
  req = masks.request('hungary', 'ab' * 8, 1, 7, HOSPITALS)
  path = writer.write(req)
  assert path == str(tmp_path / req.token())
  written = np.fromfile(path, '<i8')
  np.testing.assert_array_equal(written, masks.mask(private['hungary'], public, req))
  assert writer.write(req) == path
  with pytest.raises(masks.MaskError, match='cannot make the mask of'):
    writer.write(masks.request('cleveland', 'ab' * 8, 1, 7, HOSPITALS))
  redone = writer.write(masks.request('hungary', 'ab' * 8, 1, 7, HOSPITALS[:2]))
  assert os.path.exists(path) and os.path.exists(redone)  # The same round, redone.
  writer.write(masks.request('hungary', 'ab' * 8, 2, 7, HOSPITALS))
  assert not os.path.exists(path) and not os.path.exists(redone)  # Done with: removed.


def test_the_masked_sum_decodes_the_weighted_mean_within_half_a_step(keys):
  q = aggregator.Quantization(clip=2.0, quantization_bits=16, modulus_bits=32, max_weight=400)
  rng = np.random.default_rng(0)
  updates = {h: rng.normal(0, 0.5, size=(300,)).astype(np.float32) for h in HOSPITALS}
  updates['hungary'][:3] = [5.0, -7.0, 2.5]  # Clipped to [-2, 2].
  weights = dict(zip(HOSPITALS, [400.0, 400.0, 120.0, 400.0], strict=True))
  mask_values = round_masks(keys, HOSPITALS, size=300)
  sent, plain = {}, {}
  for h in HOSPITALS:
    masked, clipped = aggregator.encode([updates[h]], weights[h], mask_values[h], q)
    unmasked, _ = aggregator.encode([updates[h]], weights[h], np.zeros(300, np.int64), q)
    sent[h], plain[h] = masked.numpy(), unmasked.numpy()
    assert int(clipped) == (3 if h == 'hungary' else 0)
    # What the coordinator sees is unrelated to what the hospital holds.
    assert abs(np.corrcoef(sent[h], plain[h])[0, 1]) < 0.2
  np.testing.assert_array_equal(sum(sent.values()) % M, sum(plain.values()) % M)  # Exactly.
  update_type = tff.TensorType(np.float32, [300])
  mean = aggregator.decode(tf.constant(sum(sent.values())), sum(weights.values()), update_type, q)
  clipped = {h: np.clip(u, -2, 2) for h, u in updates.items()}
  expected = sum(weights[h] * clipped[h] for h in HOSPITALS) / sum(weights.values())
  assert np.max(np.abs(mean.numpy() - expected)) <= q.step / 2 + 1e-7


def config(**changes):
  c = heart_disease.get_config()
  for path, value in changes.items():
    block, name = path.split('.')
    c[block][name] = value
  return c


@pytest.mark.parametrize(
  'changes, named',
  [
    ({'secure.modulus_bits': 20}, 'secure.modulus_bits=20 is too small'),
    ({'secure.quantization_bits': 32}, 'secure.quantization_bits must be in'),
    ({'secure.modulus_bits': 40}, 'secure.modulus_bits must be in'),
    ({'secure.clip': 0.0}, 'secure.clip must be a positive'),
    ({'algorithm.name': 'fedsgd'}, "and FedProx, not 'fedsgd'"),
    ({'privacy.level': 'hospital'}, "privacy.level='hospital'"),
    ({'algorithm.clients_per_round': 1}, 'at least two hospitals in every round'),
    ({'deployment.min_hospitals': 1}, 'at least two hospitals in every round'),
    ({'data.local_steps': 0, 'data.local_epochs': 1}, 'needs data.local_steps'),
  ],
)
def test_a_secure_run_that_could_wrap_or_reveal_one_update_is_refused(changes, named):
  with pytest.raises(ConfigError, match=named.replace('(', r'\(').replace('[', r'\[')):
    settings.check(config(**changes), HOSPITALS)


def test_the_modulus_check_says_how_many_quantization_bits_fit():
  with pytest.raises(ConfigError, match=r'quantization_bits <= 21 ') as error:
    settings.check(config(**{'secure.quantization_bits': 22}), HOSPITALS)
  assert '4 hospitals of weight up to 400' in str(error.value)
  q = settings.check(config(**{'secure.quantization_bits': 21}), HOSPITALS)
  assert 4 * 400 * (2**21 - 1) < 2**32 and q.max_weight == 400
