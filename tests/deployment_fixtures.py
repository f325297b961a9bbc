"""Hospital workers as separate processes on loopback, each over its own data directory."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from tff_med import runtime
from tff_med.deployment import approvals, compiled, plan
from tff_med.run import export

ROOT = os.path.join(os.path.dirname(__file__), '..')


class HospitalProcess:
  """`experiments.hospital_worker` in a subprocess; `stop()` sends SIGTERM and waits.

  `approved` is its approvals directory; without one it runs with the development
  flag that admits any computation.
  """

  def __init__(self, data_root: str, port: int | None = None, approved: str = '', **tls):
    self.data_root = data_root
    self.port = port or runtime.free_port()
    flags = [f'--{k}={v}' for k, v in tls.items()]
    flags.append(f'--approved={approved}' if approved else '--allow_unapproved_computations')
    self.log = tempfile.NamedTemporaryFile(prefix='hospital_worker_', suffix='.log')
    self.process = subprocess.Popen(
      [
        sys.executable,
        '-m',
        'experiments.hospital_worker',
        f'--data_root={data_root}',
        f'--port={self.port}',
        *flags,
      ],
      cwd=ROOT,
      stdout=subprocess.PIPE,
      stderr=self.log,
    )
    self.address = f'localhost:{self.port}'
    self.ready_line = ''
    self._signalled = False

  def wait_ready(self, timeout: float = 120) -> str:
    """Returns the ready line; raises with the worker's stderr if it exits or times out."""
    if self.ready_line:
      return self.ready_line
    deadline = time.monotonic() + timeout
    fd = self.process.stdout.fileno()
    buffer = b''
    while time.monotonic() < deadline:
      if select.select([fd], [], [], 0.1)[0]:
        buffer += os.read(fd, 4096)
      if b'hospital worker ready' in buffer:
        self.ready_line = buffer.decode().strip()
        return self.ready_line
      if self.process.poll() is not None:
        with open(self.log.name) as f:
          tail = f.read()[-3000:]
        raise RuntimeError(f'hospital worker exited with code {self.process.returncode}: {tail}')
    raise RuntimeError('hospital worker not ready in time')

  def log_text(self) -> str:
    """What the worker logged so far (its stderr)."""
    with open(self.log.name) as f:
      return f.read()

  def signal_stop(self, sig=signal.SIGTERM) -> None:
    """Asks the process to stop (continued first if a test stopped it); `stop()` waits."""
    if self.process.poll() is None and not self._signalled:
      self.process.send_signal(signal.SIGCONT)
      self.process.send_signal(sig)
      self._signalled = True

  def stop(self, sig=signal.SIGTERM) -> int:
    """Stops the process (SIGTERM by default; continued first if a test stopped it)."""
    self.signal_stop(sig)
    if self.process.poll() is None:
      try:
        self.process.wait(30)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()
    self.process.stdout.close()
    self.log.close()
    return self.process.returncode


@contextlib.contextmanager
def all_running(processes: dict):
  """Yields `processes` ({name: HospitalProcess}) once all are ready; stops them all after."""
  try:
    for p in processes.values():
      p.wait_ready()
    yield processes
  finally:
    for p in processes.values():  # All at once: each takes about 1.4 s to stop.
      p.signal_stop()
    for p in processes.values():
      p.stop()


def split_heart_shards(source: str, target: str, groups: dict[str, list[str]]) -> dict[str, str]:
  """Copies the heart shards into one data directory per group; returns {group: directory}."""
  roots = {}
  for group, hospitals in groups.items():
    roots[group] = os.path.join(target, group)
    for hospital in hospitals:
      shutil.copytree(os.path.join(source, hospital), os.path.join(roots[group], hospital))
  return roots


def approve(config, approved: str | list[str], plan_dir: str) -> plan.Plan:
  """Exports the plan of `config` to `plan_dir` and approves it in `approved` (one directory,
  or one per hospital: each steward approves the same export), as a steward would."""
  exported = plan.export_plan(config, plan_dir)
  for directory in [approved] if isinstance(approved, str) else approved:
    approvals.approve(plan_dir, directory)
  return exported


def assert_same_model(workdir_a: str, workdir_b: str, atol: float = 1e-5) -> None:
  """The models two runs exported have the same weights (within `atol`)."""
  model_a, _ = export.load_exported(workdir_a)
  model_b, _ = export.load_exported(workdir_b)
  for a, b in zip(model_a.get_weights(), model_b.get_weights(), strict=True):
    np.testing.assert_allclose(a, b, atol=atol)


def forget_compilations() -> None:
  """Empties the coordinator's compiled-computation caches, as a fresh process starts."""
  compiled.mergeable_form.cache_clear()
  compiled.native.cache_clear()
