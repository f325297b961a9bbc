"""Hospital workers as separate processes on loopback, each over its own data directory."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from tff_med import runtime

ROOT = os.path.join(os.path.dirname(__file__), '..')


class HospitalProcess:
  """`experiments.hospital_worker` in a subprocess; `stop()` sends SIGTERM and waits."""

  def __init__(self, data_root: str, port: int | None = None, **tls):
    self.data_root = data_root
    self.port = port or runtime.free_port()
    flags = [f'--{k}={v}' for k, v in tls.items()]
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

  def wait_ready(self, timeout: float = 120) -> str:
    """Returns the ready line; raises with the worker's stderr if it exits or times out."""
    deadline = time.monotonic() + timeout
    fd = self.process.stdout.fileno()
    buffer = b''
    while time.monotonic() < deadline:
      if select.select([fd], [], [], 0.1)[0]:
        buffer += os.read(fd, 4096)
      if b'hospital worker ready' in buffer:
        return buffer.decode().strip()
      if self.process.poll() is not None:
        with open(self.log.name) as f:
          tail = f.read()[-3000:]
        raise RuntimeError(f'hospital worker exited with code {self.process.returncode}: {tail}')
    raise RuntimeError('hospital worker not ready in time')

  def stop(self, sig=signal.SIGTERM) -> int:
    """Stops the process (SIGTERM by default) and returns its exit code."""
    if self.process.poll() is None:
      self.process.send_signal(sig)
      try:
        self.process.wait(30)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()
    self.process.stdout.close()
    self.log.close()
    return self.process.returncode


def split_heart_shards(source: str, target: str, groups: dict[str, list[str]]) -> dict[str, str]:
  """Copies the heart shards into one data directory per group; returns {group: directory}."""
  roots = {}
  for group, hospitals in groups.items():
    roots[group] = os.path.join(target, group)
    for hospital in hospitals:
      shutil.copytree(os.path.join(source, hospital), os.path.join(roots[group], hospital))
  return roots
