r"""What secure aggregation costs: remote rounds with and without masking, side by side.

  uv run python -m benchmarks.secure_aggregation [--rounds=10 --repeats=2]

For each job (heart: logistic regression on two heart hospitals; cnn: small_cnn
on two hospitals of synthetic 28x28 images, 16 steps of batch 32), starts two
`experiments.hospital_worker`s on loopback, one hospital each, with mutual TLS
and their own mask keys (development flag: no approval step is timed), and runs
the same remote training with `algorithm.aggregator='mean'` and 'secure', taking
turns. Prints each one's median steady round (rounds 2..N), their ratio, and
the bytes each hospital uploads per round (`comm/upload_bytes`: the masked
upload is one int64 per value where the plain one is a float32).
"""

import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from configs import heart_disease, image_shards
from tff_med import experiment, runtime
from tff_med.data import heart_disease as heart_data
from tff_med.deployment import certificates, mask_keys

_ROUNDS = flags.DEFINE_integer('rounds', 10, 'Rounds per run.')
_REPEATS = flags.DEFINE_integer('repeats', 2, 'Runs per aggregator, the two taking turns.')


def _heart_sites(tmp):
  data = heart_data.write_shards(os.path.join(tmp, 'heart'))
  sites = {}
  for hospital in ('cleveland', 'hungary'):
    sites[hospital] = os.path.join(tmp, 'sites', hospital)
    shutil.copytree(os.path.join(data, hospital), os.path.join(sites[hospital], hospital))
  return sites, heart_disease.get_config()


def _cnn_sites(tmp):
  rng = np.random.RandomState(0)
  direction = rng.normal(size=(28, 28, 1)).astype(np.float32)
  sites = {}
  for hospital in ('site_0', 'site_1'):
    sites[hospital] = os.path.join(tmp, 'sites', hospital)
    os.makedirs(os.path.join(sites[hospital], hospital))
    for split, rows in (('train', 512), ('test', 64)):
      x = rng.normal(size=(rows, 28, 28, 1)).astype(np.float32)
      y = (np.tensordot(x, direction, axes=3) > 0).astype(np.int64)
      np.savez(os.path.join(sites[hospital], hospital, f'{split}.npz'), x=x, y=y)
  config = image_shards.get_config()
  config.data.image_shape, config.data.num_classes = (28, 28, 1), 2
  config.data.local_steps, config.data.local_epochs = 16, 0
  return sites, config


def _start(root, port, certs, keys, hospital):
  process = subprocess.Popen(
    [
      sys.executable,
      '-m',
      'experiments.hospital_worker',
      f'--data_root={root}',
      f'--port={port}',
      '--allow_unapproved_computations',
      f'--tls_cert={certs}/{hospital}.pem',
      f'--tls_key={certs}/{hospital}.key',
      f'--tls_ca={certs}/ca.pem',
      f'--mask_key={keys}/{hospital}{mask_keys.PRIVATE_SUFFIX}',
      f'--mask_public_keys={keys}/public',
    ],
    stdout=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
    text=True,
  )
  if 'hospital worker ready' not in process.stdout.readline():
    raise RuntimeError(f'the worker of {hospital} did not start')
  return process


def _run(config, aggregator, workdir):
  config.algorithm.aggregator = aggregator
  config.training.rounds = config.training.eval_every = _ROUNDS.value
  lines = []
  experiment.train(config, workdir, print_fn=lines.append)
  times = [line.split()[2] for line in lines if line.startswith('round ')]
  steady = [float(t[:-1]) for t in times if t.endswith('s') and t[0].isdigit()][2:]
  with open(os.path.join(workdir, 'metrics.csv')) as f:
    upload = float(list(csv.DictReader(f))[-1]['comm/upload_bytes'])
  return steady, upload / 2


def _job(name, make_sites, tmp):
  sites, config = make_sites(os.path.join(tmp, name))
  certs, keys = os.path.join(tmp, name, 'certs'), os.path.join(tmp, name, 'keys')
  certificates.make_consortium_certificates(
    certs, ['coordinator', *sites], hosts={h: [h, 'localhost'] for h in sites}
  )
  os.makedirs(os.path.join(keys, 'public'))
  for hospital in sites:
    _, public = mask_keys.make_key(
      hospital, keys, f'{certs}/{hospital}.pem', f'{certs}/{hospital}.key'
    )
    os.replace(public, os.path.join(keys, 'public', os.path.basename(public)))
  ports = {h: runtime.free_port() for h in sites}
  workers = [_start(sites[h], ports[h], certs, keys, h) for h in sites]
  config.deployment.workers = ','.join(f'{h}=localhost:{p}' for h, p in ports.items())
  config.deployment.tls_cert, config.deployment.tls_key = (
    f'{certs}/coordinator.pem',
    f'{certs}/coordinator.key',
  )
  config.deployment.tls_ca = f'{certs}/ca.pem'
  times, uploads = {'mean': [], 'secure': []}, {}
  try:
    for repeat in range(_REPEATS.value):
      for aggregator in times:
        steady, uploads[aggregator] = _run(
          config, aggregator, os.path.join(tmp, name, f'{aggregator}_{repeat}')
        )
        times[aggregator] += steady
  finally:
    for worker in workers:
      worker.terminate()
      worker.wait(60)
  plain, masked = (statistics.median(times[a]) for a in ('mean', 'secure'))
  print(
    f'{name:6s} {plain * 1000:8.0f} ms {masked * 1000:8.0f} ms {masked / plain:6.2f}  '
    f'{uploads["mean"]:10.0f} B {uploads["secure"]:10.0f} B {uploads["secure"] / uploads["mean"]:5.2f}'
  )


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  tf.get_logger().setLevel('ERROR')
  print(
    f'{"job":6s} {"plain round":>11s} {"secure":>11s} {"ratio":>6s}  '
    f'{"upload plain":>12s} {"secure":>12s} {"ratio":>5s}   (per hospital per round)'
  )
  with tempfile.TemporaryDirectory() as tmp:
    _job('heart', _heart_sites, tmp)
    _job('cnn', _cnn_sites, tmp)


if __name__ == '__main__':
  app.run(main)
