"""Shared fixtures: absl flags parsed, and no TFF worker left behind by any test."""

import os

import pytest
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import tensorflow  # noqa: F401  (before anything builds Keras models; see experiments/train.py)


def worker_pids() -> set[int]:
  """PIDs of running (not zombie) TFF worker_binary processes on this machine."""
  pids = set()
  for entry in os.listdir('/proc'):
    if not entry.isdigit():
      continue
    try:
      with open(f'/proc/{entry}/cmdline', 'rb') as f:
        cmdline = f.read()
      with open(f'/proc/{entry}/stat') as f:
        state = f.read().rsplit(')', 1)[1].split()[0]
    except OSError:
      continue
    if b'worker_binary' in cmdline and state != 'Z':
      pids.add(int(entry))
  return pids


@pytest.fixture(autouse=True, scope='session')
def _absl_flags_parsed():
  flags.FLAGS.mark_as_parsed()


@pytest.fixture(autouse=True)
def no_worker_left_behind():
  """Fails the test if it leaves a TFF worker running (they hang CI pipes)."""
  before = worker_pids()
  yield
  left = worker_pids() - before
  assert not left, f'TFF worker processes left running: {sorted(left)}'
