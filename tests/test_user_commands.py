"""The README's commands, run as a user types them: `uv run ...` subprocesses from the project root.

What is checked is what the user looks at: the printed lines, the files written,
TensorBoard answering over HTTP as its own frontend asks it. Runs use `:smoke`
or a small federation the test makes, and a temporary `--workdir`.
"""

import json
import concurrent.futures
import os
import shlex
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from tests.shard_fixtures import with_rows, write_digit_shards, write_shards
from tff_med import runtime

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
UV = shutil.which('uv')
pytestmark = [
  pytest.mark.slow,
  pytest.mark.skipif(UV is None, reason='the README commands start with uv (pip install uv)'),
]


# A user's shell: without the TensorFlow log level the test session sets for itself.
USER_ENV = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}


def run(command: str, timeout: float = 300) -> subprocess.CompletedProcess:
  """Runs a README command line from the project root, as a user's shell would."""
  return subprocess.run(
    shlex.split(command), cwd=ROOT, env=USER_ENV, capture_output=True, text=True, timeout=timeout
  )


def run_together(commands: list[str]) -> list[subprocess.CompletedProcess]:
  """Runs independent README commands at once (each hospital runs its own step)."""
  with concurrent.futures.ThreadPoolExecutor(len(commands)) as pool:
    return list(pool.map(run, commands))


@pytest.fixture(scope='module')
def main_job(tmp_path_factory):
  """The README's main job (at its smoke size), run as printed; returns (workdir, result).

  Its output is captured through pipes, which would stay open (and the test hang
  until its timeout) if a TFF worker outlived the binary.
  """
  runs = tmp_path_factory.mktemp('runs')
  workdir = runs / 'heart_disease'
  result = run(
    f'uv run python -m experiments.train --config=configs/heart_disease.py:smoke --workdir={workdir}'
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir, result


def test_main_job_prints_rounds_and_the_table_and_nothing_else(main_job):
  workdir, result = main_job
  assert 'round 2/2' in result.stdout and '| mean over hospitals |' in result.stdout
  # The config is in config.json, TFF's INFO lines in the log file: not on the console.
  assert 'algorithm:' not in result.stdout + result.stderr
  assert 'Program state saved' not in result.stderr
  assert 'Program state saved' in (workdir / 'log.txt').read_text()
  assert 'Traceback' not in result.stderr and 'Unable to register' not in result.stderr


def test_a_simulated_dropout_runs_as_the_readme_prints_it(tmp_path):
  result = run(
    'uv run python -m experiments.train --config=configs/heart_disease.py:smoke '
    '--config.deployment.min_hospitals=2 '
    '--config.deployment.simulate_dropout=hungary@2-4,va_long_beach@p0.1 '
    f'--workdir={tmp_path}'
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'missing: hungary' in result.stdout and 'hungary missed rounds 2' in result.stdout
  participation = json.loads((tmp_path / 'results.json').read_text())['participation']
  assert participation['rounds_missed']['hungary'] == [2]


def _get(url: str):
  with urllib.request.urlopen(url, timeout=10) as response:
    return json.loads(response.read())


def test_tensorboard_serves_the_runs_scalars_and_hparams(main_job):
  workdir, _ = main_job
  port = runtime.free_port()
  server = subprocess.Popen(
    shlex.split(f'uv run tensorboard --logdir {workdir.parent} --port {port}'),
    cwd=ROOT,
    env=USER_ENV,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )
  base = f'http://localhost:{port}/data'
  try:
    deadline, runs = time.monotonic() + 90, []
    while time.monotonic() < deadline and not runs:
      assert server.poll() is None, f'tensorboard exited: {server.stderr.read()[-2000:]}'
      try:
        runs = _get(f'{base}/runs')
      except OSError:
        time.sleep(0.5)
    assert 'heart_disease/tensorboard' in runs
    tags = _get(f'{base}/plugin/scalars/tags')['heart_disease/tensorboard']
    assert {'eval/all/auc', 'eval/cleveland/accuracy', 'train/loss'} <= set(tags)
    request = urllib.request.Request(
      f'{base}/plugin/hparams/experiment',
      data=json.dumps({'experimentName': ''}).encode(),
      headers={'Content-Type': 'application/json'},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
      hparams = {h['name'] for h in json.loads(response.read())['hparamInfos']}
    assert {'algorithm.name', 'data.batch_size', 'seed'} <= hparams
  finally:
    server.terminate()
    server.wait(30)


def test_image_recipe_trains_a_cnn_on_npz_shards(tmp_path):
  root = write_digit_shards(tmp_path / 'images')
  result = run(
    'uv run python -m experiments.train --config=configs/image_shards.py '
    f'--config.data.root={root} --config.data.num_classes=10 --workdir={tmp_path / "run"}'
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'round 15/15' in result.stdout
  final = json.loads((tmp_path / 'run' / 'results.json').read_text())['final_eval']
  assert final['all']['accuracy'] > 0.8


def test_a_bad_shard_prints_one_line_and_exits_non_zero(tmp_path):
  root = write_shards(
    tmp_path / 'shards', with_rows('beta', 'train', ['61,heavy,1,1', '50,23.4,0,0'])
  )
  result = run(
    'uv run python -m experiments.train --config=configs/csv_shards.py '
    f'--config.data.root={root} --config.data.label=outcome --workdir={tmp_path / "run"}'
  )
  assert result.returncode == 1
  assert result.stderr.splitlines()[0] == (
    f"ShardError: hospital 'beta', file '{root}/beta/train.csv', column 'bmi', row 1: "
    "value 'heavy' is not a number"
  )
  assert 'Traceback' not in result.stderr and result.stdout == ''
  verbose = run(
    'uv run python -m experiments.train --config=configs/csv_shards.py --verbosity=1 '
    f'--config.data.root={root} --config.data.label=outcome --workdir={tmp_path / "run"}'
  )
  assert verbose.returncode == 1 and 'Traceback' in verbose.stderr


def test_predict_scores_new_patients_as_the_readme_says(main_job, tmp_path):
  workdir, _ = main_job
  patients = tmp_path / 'patients.csv'
  shutil.copy(os.path.join(ROOT, 'data', 'heart_disease', 'hungary', 'test.csv'), patients)
  result = run(
    f'uv run python -m experiments.predict --workdir={workdir} --input={patients} '
    f'--output={tmp_path / "scores.csv"}'
  )
  assert result.returncode == 0, result.stderr[-3000:]
  lines = (tmp_path / 'scores.csv').read_text().splitlines()
  assert lines[0].endswith(',risk') and len(lines) == len(patients.read_text().splitlines())


def test_survival_recipe_trains_a_cox_model_on_csv_shards(tmp_path):
  from tests.test_survival import SURVIVAL_HEADER, SURVIVAL_TABLES

  root = write_shards(tmp_path / 'shards', SURVIVAL_TABLES, SURVIVAL_HEADER)
  result = run(
    'uv run python -m experiments.train --config=configs/survival_shards.py:smoke '
    f'--config.data.root={root} --config.data.event=event --config.data.time=days '
    f'--workdir={tmp_path / "run"}'
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert (
    'eval C-index' in result.stdout and '| test set | n | Cox loss | C-index |' in result.stdout
  )
  missing = run(
    'uv run python -m experiments.train --config=configs/survival_shards.py '
    f'--config.data.root={root} --config.data.event=event --workdir={tmp_path / "other"}'
  )
  assert missing.returncode == 1
  assert missing.stderr.startswith(
    'ConfigError: a survival config needs both data.event and data.time; data.time is not set'
  )


def test_kaplan_meier_command_writes_curves_and_the_log_rank_test(tmp_path):
  result = run(
    'uv run python -m experiments.kaplan_meier --config=configs/tcga_brca.py '
    f'--config.data.root={tmp_path / "data"} --workdir={tmp_path / "km"}'
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Log-rank test across hospitals' in result.stdout
  assert {'km.csv', 'km.md', 'km.png'} <= set(os.listdir(tmp_path / 'km'))


def test_jupyter_lab_serves_the_notebooks(tmp_path):
  # The README's command; the flags only keep the test headless, on a free port, as root.
  port = runtime.free_port()
  server = subprocess.Popen(
    shlex.split(
      f'uv run --with jupyter jupyter lab notebooks/ --no-browser --port={port} '
      "--ServerApp.token='' --allow-root"
    ),
    cwd=ROOT,
    env={**USER_ENV, 'JUPYTER_RUNTIME_DIR': str(tmp_path), 'JUPYTER_CONFIG_DIR': str(tmp_path)},
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
    start_new_session=True,  # The server and its kernels stop together below.
  )
  try:
    deadline, listing = time.monotonic() + 120, None
    while time.monotonic() < deadline and listing is None:
      assert server.poll() is None, f'jupyter lab exited: {server.stderr.read()[-2000:]}'
      try:
        listing = _get(f'http://localhost:{port}/api/contents')
      except OSError:
        time.sleep(0.5)
    names = {item['name'] for item in listing['content']}
    assert {'01_quickstart.ipynb', '03_is_federating_worth_it.ipynb'} <= names
  finally:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(30)


def test_the_deployment_steps_run_as_the_readme_prints_them(tmp_path):
  # 1. export the plan, 2. approve it, 3. start the worker, 4. run against it.
  shards = tmp_path / 'srv' / 'shards'
  heart = run(
    f'uv run python -c "from tff_med.data import heart_disease as h; h.write_shards(\'{shards}\')"'
  )
  assert heart.returncode == 0, heart.stderr[-2000:]
  port = runtime.free_port()
  workers = ','.join(
    f'{h}=localhost:{port}' for h in ['cleveland', 'hungary', 'switzerland', 'va_long_beach']
  )
  plan_dir, approved = tmp_path / 'plan', tmp_path / 'srv' / 'approved'
  approved.mkdir()
  # Step 3 may come first: a running worker picks up a plan approved later.
  worker = subprocess.Popen(
    shlex.split(
      f'uv run python -m experiments.hospital_worker --data_root={shards} --port={port} '
      f'--approved={approved}'
    ),
    cwd=ROOT,
    env=USER_ENV,
    stdout=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
    text=True,
  )
  try:
    exported = run(
      'uv run python -m experiments.plan --config=configs/heart_disease.py:smoke '
      f'--config.deployment.workers={workers} --out={plan_dir}'
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    with open(os.path.join(ROOT, 'tests', 'data', 'heart_smoke_plan.json')) as f:
      pinned = json.load(f)['plan_id']
    assert exported.stdout.startswith(f'plan {pinned}:')  # Another process, the same plan.
    assert exported.stderr.strip() == ''  # TFF's compiler chatter stays off the console.
    approval = run(
      f'uv run python -m experiments.approve_plan --plan={plan_dir} --approved={approved} '
      f'--data_root={shards} --yes'  # A steward at a terminal answers instead (test_plan.py).
    )
    assert approval.returncode == 0, approval.stderr[-2000:]
    assert '14 float32 values' in approval.stdout and f'approved plan {pinned}' in approval.stdout
    assert 'approved plans: none' in worker.stdout.readline()  # Ready before the approval.
    trained = run(
      'uv run python -m experiments.train --config=configs/heart_disease.py:smoke '
      f'--config.deployment.workers={workers} --config.deployment.plan={plan_dir} '
      f'--workdir={tmp_path / "run"}'
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert 'round 2/2' in trained.stdout
  finally:
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0
    worker.stdout.close()
