"""The README's secure-aggregation commands, run as typed: keys at two hospitals, their workers, a run."""

import json
import shlex
import shutil
import signal
import subprocess

import pytest

from tests.test_user_commands import ROOT, USER_ENV, run, run_together
from tff_med import runtime

pytestmark = [
  pytest.mark.slow,
  pytest.mark.skipif(shutil.which('uv') is None, reason='the README commands start with uv'),
]
HOSPITALS = ['cleveland', 'hungary']


def test_secure_aggregation_runs_as_the_readme_prints_it(tmp_path):
  certs = tmp_path / 'certs'
  ports = {h: runtime.free_port() for h in HOSPITALS}
  secure = (
    f'--config.deployment.workers={",".join(f"{h}=localhost:{p}" for h, p in ports.items())} '
    '--config.algorithm.aggregator=secure'
  )
  plan_dir = tmp_path / 'coordinator' / 'plan'
  made, shards, exported = run_together(  # Independent steps, at separate sites.
    [
      f'uv run python -m experiments.make_certificates --out={certs} '
      f'--sites=coordinator,{",".join(HOSPITALS)}',
      'uv run python -c "from tff_med.data import heart_disease as h; '
      f"h.write_shards('{tmp_path / 'heart'}')\"",
      f'uv run python -m experiments.plan --config=configs/heart_disease.py:smoke {secure} '
      f'--out={plan_dir}',
    ]
  )
  assert made.returncode == 0, made.stderr[-2000:]
  assert shards.returncode == 0, shards.stderr[-2000:]
  assert exported.returncode == 0, exported.stderr[-2000:]
  public = tmp_path / 'coordinator' / 'mask_public_keys'  # Gathered and sent to every hospital.
  public.mkdir(parents=True)
  srv = {h: tmp_path / h / 'srv' for h in HOSPITALS}
  keys = run_together(  # At each hospital: its key pair.
    [
      f'uv run python -m experiments.make_mask_key --hospital={h} '
      f'--tls_cert={certs}/{h}.pem --tls_key={certs}/{h}.key --out={srv[h]}/mask_keys'
      for h in HOSPITALS
    ]
  )
  for h, key in zip(HOSPITALS, keys, strict=True):
    assert key.returncode == 0, key.stderr[-2000:]
    assert oct((srv[h] / 'mask_keys' / f'{h}.mask.key').stat().st_mode & 0o777) == '0o600'
    shutil.copytree(tmp_path / 'heart' / h, srv[h] / 'shards' / h)
    shutil.copy(srv[h] / 'mask_keys' / f'{h}.mask.pub.json', public)
  workers = {}
  try:
    for h in HOSPITALS:
      shutil.copytree(public, srv[h] / 'mask_public_keys')
    approvals = run_together(
      [
        f'uv run python -m experiments.approve_plan --plan={plan_dir} '
        f'--approved={srv[h]}/approved --data_root={srv[h]}/shards --yes'
        for h in HOSPITALS
      ]
    )
    for h, approval in zip(HOSPITALS, approvals, strict=True):
      assert approval.returncode == 0, approval.stderr[-2000:]
      assert 'masked modulo 2^32' in approval.stdout
      workers[h] = subprocess.Popen(
        shlex.split(
          f'uv run python -m experiments.hospital_worker --data_root={srv[h]}/shards '
          f'--port={ports[h]} --approved={srv[h]}/approved --tls_cert={certs}/{h}.pem '
          f'--tls_key={certs}/{h}.key --tls_ca={certs}/ca.pem '
          f'--mask_key={srv[h]}/mask_keys/{h}.mask.key '
          f'--mask_public_keys={srv[h]}/mask_public_keys'
        ),
        cwd=ROOT,
        env=USER_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
      )
    for h in HOSPITALS:
      assert 'secure aggregation with 1 peer key(s) checked' in workers[h].stdout.readline()
    trained = run(
      f'uv run python -m experiments.train --config=configs/heart_disease.py:smoke {secure} '
      f'--config.deployment.plan={plan_dir} --config.deployment.tls_cert={certs}/coordinator.pem '
      f'--config.deployment.tls_key={certs}/coordinator.key '
      f'--config.deployment.tls_ca={certs}/ca.pem --workdir={tmp_path / "run"}'
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert 'round 2/2' in trained.stdout
    metrics = (tmp_path / 'run' / 'metrics.csv').read_text()
    assert 'train/secure_clipped_coordinates' in metrics
    config = json.loads((tmp_path / 'run' / 'config.json').read_text())
    assert config['algorithm']['aggregator'] == 'secure'
  finally:
    for worker in workers.values():
      worker.send_signal(signal.SIGTERM)
      assert worker.wait(60) == 0
      worker.stdout.close()


def test_a_simulated_secure_run_runs_as_the_readme_prints_it(tmp_path):
  result = run(
    'uv run python -m experiments.train --config=configs/heart_disease.py:smoke '
    f'--config.algorithm.aggregator=secure --workdir={tmp_path}'
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'round 2/2' in result.stdout and '| mean over hospitals |' in result.stdout
  assert 'train/secure_clipped_coordinates' in (tmp_path / 'metrics.csv').read_text()
