"""The TFF worker never outlives what started it."""

import os
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
import time

import grpc
import pytest
import tensorflow_federated as tff

from tests.conftest import is_running, worker_pids
from tff_med import runtime, stale_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.own_worker  # The worker's own life cycle, without the session's.


def test_local_runtime_stops_its_worker():
  with runtime.local_runtime() as worker:
    assert tff.federated_computation(lambda: 'ready')() == b'ready'
    pid = worker.process.pid
    assert pid in worker_pids()
  assert pid not in worker_pids()


def test_runs_inside_a_shared_runtime_use_its_one_worker_and_it_stops_at_the_end():
  moments = tff.federated_computation(lambda: 'ready')
  before = set(worker_pids())
  with runtime.shared_local_runtime(max_concurrent_computation_calls=2) as shared:
    for _ in range(2):  # Two runs: neither starts a worker of its own.
      with runtime.local_runtime(max_concurrent_computation_calls=2) as worker:
        assert worker is shared
        assert moments() == b'ready'
        assert set(worker_pids()) - before == {shared.process.pid}
    with runtime.local_runtime(max_concurrent_computation_calls=1) as other:
      assert other is not shared  # Another concurrency: a worker of its own.
      assert moments() == b'ready'
      assert other.process.pid != shared.process.pid
    assert other.process is None
    pid = shared.process.pid
  assert pid not in worker_pids()
  assert not runtime._SHARED  # noqa: SLF001


def test_stop_worker_stops_it_by_sigint_even_if_this_process_ignores_sigint():
  previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
  try:
    process = runtime.start_worker(runtime.free_port())
  finally:
    signal.signal(signal.SIGINT, previous)
  time.sleep(1)
  began = time.monotonic()
  runtime.stop_worker(process, timeout=10)
  assert process.returncode == -signal.SIGINT  # Not the SIGKILL fallback after 10 s.
  assert time.monotonic() - began < 5


@pytest.mark.slow
@pytest.mark.parametrize('sigint', ['default', 'ignored'])
def test_worker_dies_when_its_python_process_is_killed(sigint):
  # A shell ignores SIGINT in what it starts in the background (`cmd &`, nohup),
  # and the worker would inherit that: it must die with its parent all the same.
  ignore = 'signal.signal(signal.SIGINT, signal.SIG_IGN)\n' if sigint == 'ignored' else ''
  code = (
    'import os, signal\n' + ignore + 'from tff_med import runtime\n'
    'worker = runtime.OwnedWorker()\n'
    'worker.stub()\n'
    'print(worker.process.pid, flush=True)\n'
    'os.kill(os.getpid(), signal.SIGKILL)\n'
  )
  result = subprocess.run(
    [sys.executable, '-c', code], capture_output=True, text=True, timeout=120, cwd=os.getcwd()
  )
  pid = int(result.stdout.split()[-1])
  deadline = time.monotonic() + 10
  while is_running(pid) and time.monotonic() < deadline:
    time.sleep(0.1)
  assert not is_running(pid)


@pytest.mark.slow
def test_computations_outside_local_runtime_use_an_owned_worker():
  code = (
    'import tensorflow_federated as tff\n'
    'from tff_med import runtime\n'
    "print(tff.federated_computation(lambda: 'x')())\n"
  )
  # With TFF's own default context the worker would keep this pipe open forever.
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
  assert "b'x'" in result.stdout


# What a notebook calls outside any `local_runtime` block: each module that runs TFF
# computations installs the owned default context itself (a fresh process imports
# only that module and data readers).
NOTEBOOK_CALLS = {
  'load_task': (
    'from configs import heart_disease\n'
    'from tff_med.learning import task\n'
    'config = heart_disease.get_config()\n'
    'config.data.root = ROOT\n'
    'print(task.load_task(config).data.hospitals)\n'
  ),
  'hospital_summaries': (
    'from tff_med.data import heart_disease, shards\n'
    'from tff_med.study import heterogeneity\n'
    "raw = shards.load_csv_shards(heart_disease.write_shards(ROOT), label='heart_disease')\n"
    'print(sorted(heterogeneity.hospital_summaries(raw)))\n'
  ),
  'federated_kaplan_meier': (
    'from tff_med.data import shards, tcga_brca\n'
    'from tff_med.survival import kaplan_meier\n'
    "raw = shards.load_csv_shards(tcga_brca.write_shards(ROOT), event='E', time='T')\n"
    'print(sorted(kaplan_meier.federated_kaplan_meier(raw).curves))\n'
  ),
}


@pytest.mark.slow
@pytest.mark.parametrize('call', sorted(NOTEBOOK_CALLS))
def test_a_tff_call_outside_local_runtime_leaves_no_worker_behind(tmp_path, call):
  code = f'ROOT = {str(tmp_path / "data")!r}\n' + NOTEBOOK_CALLS[call]
  # TFF's own default context would start a worker that keeps these pipes open forever.
  process = subprocess.Popen(
    [sys.executable, '-c', code],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    cwd=ROOT,
    start_new_session=True,  # On failure, the leaked worker goes with the group.
  )
  try:
    stdout, stderr = process.communicate(timeout=120)
  except subprocess.TimeoutExpired:
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
    pytest.fail(f'{call}: the pipes stayed open after 120 s (a TFF worker left behind)')
  assert process.returncode == 0, stderr[-2000:]
  assert "'" in stdout  # The hospitals (or curves) it printed.


def test_float_concurrency_is_rejected_instead_of_hanging():
  with pytest.raises(runtime.WorkerError, match='must be an int'):
    runtime.start_worker(runtime.free_port(), max_concurrent_computation_calls=2.0)


def test_worker_that_cannot_start_fails_fast_with_its_log():
  with socket.socket() as taken:
    taken.bind(('0.0.0.0', 0))
    taken.listen()
    port = taken.getsockname()[1]
    process = runtime.start_worker(port)
    try:
      stub = tff.framework.RemoteExecutorGrpcStub(grpc.insecure_channel(f'localhost:{port}'))
      with pytest.raises(runtime.WorkerError, match='exited with code'):
        runtime.wait_until_ready(stub, process, 'the test worker', timeout=20)
    finally:
      runtime.stop_worker(process)


@pytest.mark.slow
def test_leak_detector_sees_a_worker_left_by_tffs_default_context():
  # Without tff_med, TFF's default context leaves its worker running after exit;
  # the fixture that guards every test must see such an orphan.
  before = worker_pids()
  code = 'import tensorflow_federated as tff\ntff.federated_computation(lambda: 1)()\n'
  subprocess.run(
    [sys.executable, '-c', code],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
    timeout=120,
    check=True,
  )
  leaked = worker_pids() - before
  try:
    assert leaked
  finally:
    for pid in leaked:
      os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 10
    while any(is_running(p) for p in leaked) and time.monotonic() < deadline:
      time.sleep(0.1)


def _environ(pid):
  with open(f'/proc/{pid}/environ', 'rb') as f:
    return dict(item.split(b'=', 1) for item in f.read().split(b'\0') if b'=' in item)


@pytest.mark.parametrize('user_value', [None, '4'])
def test_worker_keeps_two_malloc_arenas_unless_the_user_says_otherwise(user_value, monkeypatch):
  # Without the cap, RSS grew 10% over 1000 heart rounds (benchmarks/README.md).
  if user_value is not None:
    monkeypatch.setenv('MALLOC_ARENA_MAX', user_value)
  process = runtime.start_worker(runtime.free_port())
  try:
    expected = user_value or str(runtime.MALLOC_ARENAS)
    assert _environ(process.pid)[b'MALLOC_ARENA_MAX'] == expected.encode()
  finally:
    runtime.stop_worker(process)


def test_this_process_caps_its_malloc_arenas_too(monkeypatch):
  monkeypatch.delenv('MALLOC_ARENA_MAX', raising=False)
  assert runtime.limit_malloc_arenas()
  monkeypatch.setenv('MALLOC_ARENA_MAX', '4')
  assert not runtime.limit_malloc_arenas()  # The user's value, applied by glibc at start, wins.


def test_files_left_by_a_killed_process_are_swept_at_the_next_start():
  dead = subprocess.Popen(['true'])
  dead.wait()
  prefix = 'tff_med_sweep_test_'
  stale = tempfile.mkdtemp(prefix=f'{prefix}{dead.pid}_')
  open(os.path.join(stale, 'train.npy'), 'w').close()  # What a killed run leaves.
  ours = tempfile.mkdtemp(prefix=stale_files.owned_name(prefix))
  try:
    assert stale_files.sweep(prefix) == [stale]
    assert not os.path.exists(stale) and os.path.isdir(ours)  # A live owner's is kept.
  finally:
    shutil.rmtree(ours, ignore_errors=True)
