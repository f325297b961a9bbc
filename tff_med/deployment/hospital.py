"""One hospital's side of a deployment: its shards checked, TFF's worker started beside them.

`serve` validates the shards under `data_root` (every bad row, column or file
is named here, at the hospital; the label, which each study chooses, is checked
when the coordinator asks for the schema), starts TFF's
`worker_binary` with `data_root` as its working directory (the coordinator's
shard names resolve there and nowhere else), optionally puts the mutual-TLS
proxy in front of it, and stops everything on SIGINT or SIGTERM. The worker
dies with this process even if it is killed (`runtime.start_worker`).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import threading

import grpc
import tensorflow_federated as tff

from tff_med import runtime
from tff_med.data import shards
from tff_med.deployment import certificates
from tff_med.deployment.tls_proxy import TlsProxy
from tff_med.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class HospitalConfig:
  """What a hospital's worker needs: its data, its port, and optionally its TLS files."""

  data_root: str
  port: int
  tls_cert: str = ''
  tls_key: str = ''
  tls_ca: str = ''
  worker_port: int = 0  # Behind TLS: the raw worker's loopback port (0: any free one).
  ready_timeout: float = 60.0

  @property
  def tls(self) -> bool:
    return bool(self.tls_cert)


def check_port_free(port: int) -> None:
  """Raises ConfigError if `port` cannot be bound (in use, or privileged)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    # As servers do, so a port whose last connections linger in TIME_WAIT counts as free.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
      s.bind(('', port))
    except OSError as e:
      raise ConfigError(f'port {port} cannot be used: {e.strerror}') from e


def check(config: HospitalConfig) -> list[str]:
  """Validates the TLS files and the shards (any study's label); returns the hospitals served.

  Raises:
    ConfigError: Incomplete, expired or foreign TLS files, or a port in use.
    ShardError: A bad shard, naming the hospital, file, column and row.
  """
  files = [config.tls_cert, config.tls_key, config.tls_ca]
  if any(files) and not all(files):
    raise ConfigError('mutual TLS needs all of --tls_cert, --tls_key and --tls_ca')
  if config.tls:
    certificates.check_certificate(config.tls_cert, config.tls_ca, who='hospital worker')
  if not os.path.isdir(config.data_root):
    raise ConfigError(f'--data_root {config.data_root} is not a directory')
  hospitals = shards.check_csv_shards(config.data_root)
  check_port_free(config.port)
  if config.worker_port:
    check_port_free(config.worker_port)
  return hospitals


class HospitalWorker:
  """TFF's worker over `data_root`, behind the TLS proxy when configured."""

  def __init__(self, config: HospitalConfig):
    self.config = config
    self.hospitals = check(config)
    self.process = None
    self.proxy = None

  def start(self) -> None:
    """Starts the worker (and proxy) and waits until it answers.

    Raises:
      runtime.WorkerError: The worker did not become ready in time.
    """
    c = self.config
    worker_port = (c.worker_port or runtime.free_port()) if c.tls else c.port
    self.process = runtime.start_worker(worker_port, cwd=os.path.abspath(c.data_root))
    channel = grpc.insecure_channel(f'localhost:{worker_port}')
    try:
      stub = tff.framework.RemoteExecutorGrpcStub(channel)
      runtime.wait_until_ready(stub, self.process, 'the TFF worker', c.ready_timeout)
    except BaseException:
      self.stop()
      raise
    finally:
      channel.close()
    if c.tls:
      self.proxy = TlsProxy(c.port, worker_port, c.tls_cert, c.tls_key, c.tls_ca)
      try:
        self.proxy.start()
      except OSError as e:
        self.stop()
        raise ConfigError(f'port {c.port} cannot be used: {e.strerror}') from e

  def ready_line(self) -> str:
    """The one line logged when the hospital is ready."""
    tls = 'mutual TLS' if self.config.tls else 'plain gRPC, no TLS'
    return (
      f'hospital worker ready: {", ".join(self.hospitals)} on port {self.config.port} ({tls}); '
      f'data stays in {os.path.abspath(self.config.data_root)}'
    )

  def stop(self) -> None:
    """Stops the proxy and the worker."""
    if self.proxy is not None:
      self.proxy.stop()
      self.proxy = None
    if self.process is not None:
      runtime.stop_worker(self.process)
      self.process = None


def serve(config: HospitalConfig, print_fn=print) -> None:
  """Runs a hospital worker until SIGINT or SIGTERM (or the worker exits), then stops it."""
  worker = HospitalWorker(config)
  stop = threading.Event()
  previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    worker.start()
    print_fn(worker.ready_line())
    while not stop.wait(0.5):
      if worker.process.poll() is not None:
        raise runtime.WorkerError(
          f'the TFF worker exited with code {worker.process.returncode}; '
          f'log: {worker.process.log_path}'
        )
  finally:
    worker.stop()
    for s, handler in previous.items():
      signal.signal(s, handler)
