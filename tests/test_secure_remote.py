"""Secure aggregation across hospital workers: what the coordinator sees is only the sum.

Three hospitals, each its own worker behind its gate, with mutual TLS, an
approved plan and its own mask key. The test records, on the coordinator's
gRPC channels, every value each hospital sends, and plays the hospitals (it
holds their private keys, as they do) to unmask them afterwards.
"""

import collections
import copy
import os
import shutil
import sys

import grpc
from cryptography.hazmat.primitives import serialization
import numpy as np
import pytest
from scipy import stats
from tensorflow_federated.proto.v0 import executor_pb2
from tensorflow_federated.python.core.impl.compiler import array as tff_array

from configs import heart_disease
from tests.deployment_fixtures import (
  HospitalProcess,
  all_running,
  approve,
  assert_same_model,
  split_heart_shards,
)
from tests.test_deployment import remote_config
from tff_med import experiment, runtime
from tff_med.data import heart_disease as heart_data
from tff_med.deployment import certificates, coordinator, fingerprint, gate, mask_keys, worker_link
from tff_med.deployment.addresses import parse_workers
from tff_med.errors import DeploymentError
from tff_med.learning.secure import aggregator, masks
from tff_med.run import simulated

pytestmark = pytest.mark.slow  # three hospital workers as subprocesses

HOSPITALS = ['cleveland', 'hungary', 'va_long_beach']
SIZE = 13 * 64 + 64 + 64 + 1  # The mlp's values: each mask's length.
M = 2**32


def secure(config):
  config.algorithm.aggregator = 'secure'
  config.model.name = 'mlp'  # Enough values per update for the statistics below.
  return config


@pytest.fixture(scope='module')
def consortium(tmp_path_factory):
  """(workers, TLS deployment settings, private key paths, data root of the three)."""
  root = tmp_path_factory.mktemp('secure')
  heart = heart_data.write_shards(str(root / 'heart'))
  roots = split_heart_shards(heart, str(root / 'sites'), {h: [h] for h in HOSPITALS})
  three = root / 'three'
  for h in HOSPITALS:
    shutil.copytree(os.path.join(heart, h), three / h)
  certs = root / 'certs'
  certificates.make_consortium_certificates(
    str(certs), ['coordinator', *HOSPITALS], hosts={h: [h, 'localhost'] for h in HOSPITALS}
  )
  tls = dict(
    tls_cert=certs / 'coordinator.pem', tls_key=certs / 'coordinator.key', tls_ca=certs / 'ca.pem'
  )
  tls = {k: str(v) for k, v in tls.items()}
  public = root / 'public'
  os.makedirs(public)
  private = {}
  for h in HOSPITALS:  # At each hospital: its key pair; the public half goes to the coordinator.
    private[h], published = mask_keys.make_key(
      h, str(root / f'keys_{h}'), str(certs / f'{h}.pem'), str(certs / f'{h}.key')
    )
    shutil.copy(published, public)
  ports = {h: runtime.free_port() for h in HOSPITALS}
  config = secure(remote_config(','.join(f'{h}=localhost:{p}' for h, p in ports.items()), **tls))
  approve(config, [str(root / f'approved_{h}') for h in HOSPITALS], str(root / 'plan'))
  workers = {
    h: HospitalProcess(
      roots[h],
      ports[h],
      approved=str(root / f'approved_{h}'),
      tls_cert=certs / f'{h}.pem',
      tls_key=certs / f'{h}.key',
      tls_ca=certs / 'ca.pem',
      mask_key=private[h],
      mask_public_keys=public,
    )
    for h in HOSPITALS
  }
  with all_running(workers):
    assert 'secure aggregation with 2 peer key(s) checked' in workers['hungary'].ready_line
    yield config, private, str(three), root


class Recorder(grpc.UnaryUnaryClientInterceptor):
  """Keeps every (method, request, response) on one coordinator channel."""

  def __init__(self, calls: list):
    self.calls = calls

  def intercept_unary_unary(self, continuation, details, request):
    outcome = continuation(details, request)
    if outcome.exception() is None:
      self.calls.append((details.method.rsplit('/', 1)[-1], request, outcome.result()))
    return outcome


def arrays(value: executor_pb2.Value):
  for kind, leaf in fingerprint.walk_value(value):
    if kind == 'array':
      yield tff_array.from_proto_content(leaf) if leaf.content else tff_array.from_proto(leaf)


def load_x25519(path):
  with open(path, 'rb') as f:
    return serialization.load_pem_private_key(f.read(), password=None)


def hospital_masks(private, calls_by_hospital):
  """{(hospital, round): its mask}, from the tokens the coordinator sent and the hospital's key."""
  keys = {h: load_x25519(path) for h, path in private.items()}
  public = {h: k.public_key() for h, k in keys.items()}
  found = {}
  for hospital, calls in calls_by_hospital.items():
    for method, request, _ in calls:
      if method != 'CreateValue':
        continue
      for kind, leaf in fingerprint.walk_value(request.value):
        for text in gate._strings(leaf) if kind == 'array' else ():
          req = masks.parse_token(text)
          if req is not None and req.hospital == hospital:
            found[hospital, req.round_num] = masks.mask(keys[hospital], public, req)
  return found


def test_the_coordinator_sees_only_masked_updates_whose_sum_is_exact(
  consortium, tmp_path, monkeypatch
):
  config, private, three, root = consortium
  calls = collections.defaultdict(list)
  secure_channel = grpc.secure_channel

  def recorded_channel(address, credentials, options=None):
    channel = secure_channel(address, credentials, options)
    return grpc.intercept_channel(channel, Recorder(calls[address]))

  monkeypatch.setattr(worker_link.grpc, 'secure_channel', recorded_channel)
  opened = []
  recording = [True]
  sys.addaudithook(
    lambda event, args: opened.append(str(args[0])) if recording[0] and event == 'open' else None
  )
  try:
    experiment.train(config, str(tmp_path / 'remote'), print_fn=lambda _: None)
  finally:
    recording[0] = False
  # The coordinator never opened a key, a secret or a mask.
  assert not [p for p in opened if str(root) in p and ('keys_' in p or 'masks' in p)]
  assert not [p for p in opened if p.endswith(mask_keys.PRIVATE_SUFFIX)]

  addresses = parse_workers(config.deployment.workers)
  by_hospital = {h: calls[addresses[h]] for h in HOSPITALS}
  masks_of = hospital_masks(private, by_hospital)
  q = aggregator.Quantization(2.0, 16, 32, max_weight=400)
  received = {
    h: [
      a.astype(np.int64)
      for method, _, response in by_hospital[h]
      if method == 'Compute'
      for a in arrays(response.value)
      if isinstance(a, np.ndarray) and a.dtype == np.int64 and a.size == SIZE
    ]
    for h in HOSPITALS
  }
  sums = []
  for round_num in (1, 2):
    sent, unmasked = {}, {}
    for h in HOSPITALS:
      mask = masks_of[h, round_num]
      own = [v for v in received[h] if np.all((v - mask) % M <= 400 * 65535)]
      assert len(own) == 1, f'{h} round {round_num}: {len(own)} masked updates'
      sent[h], unmasked[h] = own[0], (own[0] - mask) % M
      assert uniform(sent[h]) and abs(np.corrcoef(sent[h], unmasked[h])[0, 1]) < 0.15
    # The sum of what the coordinator saw is the hospitals' quantized sum, exactly.
    np.testing.assert_array_equal(sum(sent.values()) % M, sum(unmasked.values()) % M)
    sums.append(sum(sent.values()))
    if round_num == 1:
      first = dict(unmasked)
  # Anything else a hospital returned was a merge: of all (the round's sum) or of two (masked).
  for values in received.values():
    for v in values:
      assert uniform(v) or any(np.array_equal(v, total) for total in sums)

  simulated_config = secure(heart_disease.get_config('smoke'))
  simulated_config.data.source, simulated_config.data.root = 'csv', three
  experiment.train(simulated_config, str(tmp_path / 'sim'), print_fn=lambda _: None)
  assert_same_model(str(tmp_path / 'remote'), str(tmp_path / 'sim'))
  check_round_one_updates(three, first, q)


def uniform(values) -> bool:
  """The top 4 bits modulo 2^32 fall in 16 bins as uniform values would (chi-square)."""
  return stats.chisquare(np.bincount((values % M) >> 28, minlength=16)).pvalue > 1e-4


def check_round_one_updates(three, unmasked, q):
  """Each unmasked value is that hospital's true first-round update, quantized (one level)."""
  config = heart_disease.get_config('smoke')
  config.data.source, config.data.root = 'csv', three
  config.model.name = 'mlp'
  with simulated.prepare(config) as run:
    state = run.process.initialize()
    start = run.process.get_model_weights(state).trainable
    for h in HOSPITALS:
      output = run.process.next(state, run.datasets_fn(1, [h]))
      after = run.process.get_model_weights(output.state).trainable
      update = [a - b for a, b in zip(start, after, strict=True)]  # TFF's delta: start - trained.
      expected, _ = aggregator.encode(update, 400.0, np.zeros(SIZE, np.int64), q)
      difference = np.abs(unmasked[h] - expected.numpy())
      assert difference.max() <= 400 and np.mean(difference == 0) > 0.95, h


def test_patient_level_dp_under_secure_aggregation_runs_as_in_simulation(consortium, tmp_path):
  config, _, three, root = consortium
  private = {'level': 'patient', 'noise_multiplier': 1.0}
  config = copy.deepcopy(config)
  config.privacy.update(private)
  # Each steward approves this plan too; the running workers pick it up.
  approve(config, [str(root / f'approved_{h}') for h in HOSPITALS], str(tmp_path / 'plan'))
  experiment.train(config, str(tmp_path / 'remote'), print_fn=lambda _: None)
  simulated_config = secure(heart_disease.get_config('smoke'))
  simulated_config.data.source, simulated_config.data.root = 'csv', three
  simulated_config.privacy.update(private)
  experiment.train(simulated_config, str(tmp_path / 'sim'), print_fn=lambda _: None)
  assert_same_model(str(tmp_path / 'remote'), str(tmp_path / 'sim'))


def test_a_round_of_one_hospital_is_refused_by_its_gate(consortium):
  config, _, _, _ = consortium
  with coordinator.prepare(config) as run:
    with run.route(HOSPITALS):
      state = run.process.initialize()
    with pytest.raises(DeploymentError, match='refuses a secure round of one hospital'):
      with run.route(['hungary']):
        run.process.next(state, run.datasets_fn(1, ['hungary']))
