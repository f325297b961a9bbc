"""Shared fixtures: absl flags parsed, one local TFF worker for the session, and no other
TFF worker left behind by any test."""

import os

import pytest
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import tensorflow  # noqa: F401  (before anything builds Keras models; see experiments/train.py)

from tff_med import runtime


def _parent(pid: int) -> int:
  with open(f'/proc/{pid}/stat') as f:
    return int(f.read().rsplit(')', 1)[1].split()[1])


def _ancestors() -> set[int]:
  pids, pid = {os.getpid()}, os.getpid()
  while pid > 1:
    pid = _parent(pid)
    pids.add(pid)
  return pids


def is_running(pid: int) -> bool:
  """True if `pid` exists and is not a zombie."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
  except OSError:
    return False


def worker_pids() -> set[int]:
  """PIDs of running TFF workers that this test session started or orphaned.

  A leaked worker is re-parented, when its starter exits, to the nearest
  sub-reaper ancestor (or init); so a worker counts when its parent is this
  process or one of its ancestors. Workers of unrelated processes are ignored.
  """
  ours = _ancestors()
  pids = set()
  for entry in os.listdir('/proc'):
    if not entry.isdigit():
      continue
    try:
      with open(f'/proc/{entry}/cmdline', 'rb') as f:
        cmdline = f.read()
      with open(f'/proc/{entry}/stat') as f:
        state, parent = f.read().rsplit(')', 1)[1].split()[:2]
    except OSError:
      continue
    if b'worker_binary' in cmdline and state != 'Z' and int(parent) in ours:
      pids.add(int(entry))
  return pids


@pytest.fixture(autouse=True, scope='session')
def _absl_flags_parsed():
  flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope='session')
def _session_worker():
  """One local TFF worker that every test's `local_runtime` blocks reuse (as a study's runs do).

  Starting a worker per run took about a second of wall time, and a session starts
  hundreds of runs. The worker keeps no state between computations (see
  `runtime.shared_local_runtime`); one that a test kills is restarted on next use.
  """
  with runtime.shared_local_runtime() as worker:
    yield worker


@pytest.fixture(autouse=True)
def _own_worker_if_marked(request, _session_worker):
  """Tests marked `own_worker` (of the worker's own life cycle) see no shared worker."""
  if request.node.get_closest_marker('own_worker') is None:
    yield
    return
  shared = list(runtime._SHARED)  # noqa: SLF001
  runtime._SHARED.clear()  # noqa: SLF001
  try:
    yield
  finally:
    runtime._SHARED[:] = shared  # noqa: SLF001


@pytest.fixture(autouse=True)
def no_worker_left_behind(_session_worker, _own_worker_if_marked):
  """Fails the test if it leaves a TFF worker running (they hang CI pipes)."""
  before = worker_pids()
  yield
  shared = _session_worker.process.pid if _session_worker.process else None
  left = worker_pids() - before - {shared}
  assert not left, f'TFF worker processes left running: {sorted(left)}'
