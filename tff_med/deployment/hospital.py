"""One hospital's side of a deployment: its shards checked, TFF's worker behind its gate.

`serve` validates the shards under `data_root` (every bad row, column or file
is named here, at the hospital; the label, which each plan names, is checked
when the coordinator asks for the schema) and the approved plans, starts TFF's
`worker_binary` with `data_root` as its working directory on a loopback port,
puts the gate (`gate.py`: approved computations only, shard names confined to
the hospitals validated here, mutual TLS when configured) on the public port,
and stops everything on SIGINT or SIGTERM. The worker dies with this process
even if it is killed (`runtime.start_worker`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import shutil
import signal
import socket
import tempfile
import threading

import grpc
import tensorflow_federated as tff

from tff_med import runtime, stale_files
from tff_med.deployment import (
  certificates,
  hospital_masks,
  npz_view,
  tls_identity,
  worker_namespace,
)
from tff_med.deployment.approvals import Approvals
from tff_med.deployment.gate import Gate
from tff_med.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class HospitalConfig:
  """What a hospital's worker needs: its data, its port, its approvals, its TLS files."""

  data_root: str
  port: int
  approved: str = ''  # The directory of approved plans (experiments.approve_plan).
  allow_unapproved: bool = False  # Development only: admit any computation, loudly.
  tls_cert: str = ''
  tls_key: str = ''
  tls_ca: str = ''
  tls_crl: str = ''  # A revocation list from the consortium CA (PEM), optional.
  coordinator: str = 'coordinator'  # The common name of the coordinator's certificate.
  worker_port: int = 0  # The raw worker's port, behind the gate (0: any free one).
  # 'auto': the worker in its own network namespace where Linux allows it, else on a
  # port the hospital must close; 'namespace' insists; 'none' never isolates.
  isolation: str = 'auto'
  ready_timeout: float = 60.0
  mask_key: str = ''  # Secure aggregation: this hospital's private mask key (its own)...
  mask_public_keys: str = ''  # ...and the directory of the consortium's signed public keys.

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


def check(config: HospitalConfig) -> tuple[list[str], Approvals | None]:
  """Validates TLS files, shards, approvals and mask keys; returns (hospitals served, approvals).

  Raises:
    ConfigError: Incomplete, expired or foreign TLS files, a certificate that
      does not name a hospital served, a bad approvals directory or record,
      or a port in use.
    ShardError: A bad shard, naming the hospital, file, column and row.
  """
  files = [config.tls_cert, config.tls_key, config.tls_ca]
  if any(files) and not all(files):
    raise ConfigError('mutual TLS needs all of --tls_cert, --tls_key and --tls_ca')
  if config.tls_crl and not config.tls:
    raise ConfigError('--tls_crl needs mutual TLS (--tls_cert, --tls_key and --tls_ca)')
  if config.tls:
    tls_identity.TlsFiles(config.tls_cert, config.tls_key, config.tls_ca).check('hospital worker')
    if config.tls_crl:
      certificates.load_revocation_list(config.tls_crl, config.tls_ca)
  if not os.path.isdir(config.data_root):
    raise ConfigError(f'--data_root {config.data_root} is not a directory')
  hospitals = npz_view.check_shards(config.data_root)
  if config.tls:
    tls_identity.check_names(config.tls_cert, hospitals)
  if config.allow_unapproved == bool(config.approved):
    raise ConfigError(
      'give --approved=DIR (the plans this hospital approved) or, for development only, '
      '--allow_unapproved_computations'
    )
  approvals = Approvals(config.approved) if config.approved else None
  if config.isolation not in ('auto', 'namespace', 'none'):
    raise ConfigError(f'--isolation must be auto, namespace or none, got {config.isolation!r}')
  if config.isolation == 'namespace' and not worker_namespace.available():
    raise ConfigError(
      '--isolation=namespace: this machine does not allow a network namespace (unshare --net '
      'failed); use --isolation=none and close the raw worker port (docs/deployment.md)'
    )
  check_port_free(config.port)
  if config.worker_port:
    check_port_free(config.worker_port)
  return hospitals, approvals


SOCKET_PREFIX = 'tff_med_gate_'  # + the owner's PID: the worker's Unix socket lives there.


class HospitalWorker:
  """TFF's worker over `data_root`, behind the gate."""

  def __init__(self, config: HospitalConfig):
    self.config = config
    self.hospitals, self.approvals = check(config)
    self.keys = hospital_masks.load(config, self.hospitals, self.approvals)
    self.process = None
    self.gate = None
    self.worker_port = 0
    self.isolated = False
    self._socket_dir = ''
    self._view = ''  # The worker's private directory (npz tensors, or links; masks), if any.

  def start(self) -> None:
    """Starts the worker and the gate, and waits until the worker answers.

    Raises:
      runtime.WorkerError: The worker did not become ready in time.
    """
    c = self.config
    self.worker_port = c.worker_port or runtime.free_port()
    self.isolated = c.isolation == 'namespace' or (
      c.isolation == 'auto' and worker_namespace.available()
    )
    if self.isolated:
      stale_files.sweep(SOCKET_PREFIX)
      self._socket_dir = tempfile.mkdtemp(prefix=stale_files.owned_name(SOCKET_PREFIX))
      path = os.path.join(self._socket_dir, 'worker.sock')
      wrapper = tuple(worker_namespace.command(path, self.worker_port))
      target = f'unix:{path}'
    else:
      wrapper, target = (), f'127.0.0.1:{self.worker_port}'
    cwd = os.path.abspath(c.data_root)
    if npz_view.is_npz_root(c.data_root):
      cwd = self._view = npz_view.write_view(c.data_root, self.hospitals)
    elif self.keys is not None:  # Masks are written beside the shards, never into data_root.
      cwd = self._view = hospital_masks.link_view(c.data_root, self.hospitals)
    self.process = runtime.start_worker(self.worker_port, cwd=cwd, wrapper=wrapper)
    channel = grpc.insecure_channel(target)
    try:
      stub = tff.framework.RemoteExecutorGrpcStub(channel)
      runtime.wait_until_ready(stub, self.process, 'the TFF worker', c.ready_timeout)
    except BaseException:
      self.stop()
      raise
    finally:
      channel.close()
    tls = tls_identity.TlsFiles(c.tls_cert, c.tls_key, c.tls_ca, c.tls_crl) if c.tls else None
    masks = self.keys.writer(cwd) if self.keys is not None else None
    self.gate = Gate(
      c.port, target, self.hospitals, self.approvals, tls, c.coordinator, masks=masks
    )
    try:
      self.gate.start()
    except OSError as e:
      self.stop()
      raise ConfigError(f'port {c.port} cannot be used: {e.strerror}') from e

  def ready_line(self) -> str:
    """The one line logged when the hospital is ready."""
    tls = 'mutual TLS' if self.config.tls else 'plain gRPC, no TLS'
    if self.approvals is None:
      approval = 'WARNING: ANY computation admitted (--allow_unapproved_computations)'
    else:
      approval = f'approved plans: {self.approvals.describe()} (in {self.config.approved})'
    secure = ''
    if self.keys is not None:
      secure = f'secure aggregation with {len(self.keys.public_keys) - 1} peer key(s) checked; '
    if self.isolated:
      raw = 'the TFF worker in its own network namespace'
    else:
      raw = f'CLOSE port {self.worker_port} to the network (the raw TFF worker listens there)'
    return (
      f'hospital worker ready: {", ".join(self.hospitals)} on port {self.config.port} ({tls}); '
      f'data stays in {os.path.abspath(self.config.data_root)}; {approval}; {secure}{raw}'
    )

  def stop(self) -> None:
    """Stops the gate and the worker."""
    if self.gate is not None:
      self.gate.stop()
      self.gate = None
    if self.process is not None:
      crashed = self.process.poll() is not None  # Its log is named in the error: kept.
      runtime.stop_worker(self.process)
      if not crashed:
        with contextlib.suppress(OSError):
          os.remove(self.process.log_path)
      self.process = None
    for directory in (self._socket_dir, self._view):
      if directory:
        shutil.rmtree(directory, ignore_errors=True)
    self._socket_dir = self._view = ''


def raise_file_limit() -> int:
  """Raises this process's open-file limit to its hard limit; returns the new soft limit.

  Each connection to the gate holds a file: with the usual soft limit of 1024, about a
  thousand idle unauthenticated connections would lock the coordinator out until the
  gate's handshake timeout closes them.
  """
  soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
  if soft < hard:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
  return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def serve(config: HospitalConfig, print_fn=print) -> None:
  """Runs a hospital worker until SIGINT or SIGTERM (or the worker exits), then stops it."""
  raise_file_limit()
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
