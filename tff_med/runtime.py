"""The TFF C++ worker, owned by tff_med so that it never outlives its run.

Importing TFF installs a default context that starts `worker_binary` on first
use and leaves it running after Python exits, holding the parent's stdout and
stderr open (a CI pipe then hangs). TFF has no public switch for that, so
`local_runtime` starts the worker itself and builds the same execution context
from TFF's public pieces (`RemoteExecutorGrpcStub`, `RemoteExecutor`,
`ResourceManagingExecutorFactory`, `SyncExecutionContext`):

* the worker's output goes to a log file, never to our stdout/stderr;
* the kernel kills it if this process dies, even by SIGKILL (PR_SET_PDEATHSIG);
* it stops on SIGINT (it ignores SIGTERM), even if this process inherited an
  ignored SIGINT from a shell that started it in the background;
* leaving the `with` block (or interpreter exit) stops it and waits for it,
  and ends its context's thread (`contexts.stop_context_thread`);
* importing this module replaces TFF's leaky default context with an owned one;
* a worker that does not become ready within `ready_timeout` raises instead of
  waiting forever, quoting its log;
* both the worker and this process keep glibc to two malloc arenas, which keeps
  memory flat over long runs (`limit_malloc_arenas`).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import time

import grpc
import tensorflow_federated as tff

from tff_med import stale_files
from tff_med.contexts import execution_context, stop_context_thread
from tff_med.errors import WorkerError  # noqa: F401  (raised here; callers catch runtime.WorkerError)

_PR_SET_PDEATHSIG = 1
_M_ARENA_MAX = -8  # mallopt parameter, glibc's malloc.h.
# glibc gives threads their own malloc arenas (up to 8 per core); TF's thread
# pools then spread and fragment memory over them, and resident memory creeps
# up: +10% over 1000 heart rounds, flat (+0.6%) with two arenas, while
# malloc_trim every 50 rounds did nothing (benchmarks/README.md, "Memory").
MALLOC_ARENAS = 2
LOG_PREFIX = 'tff_med_worker_'  # + the owner's PID: swept once it is gone.
_GRPC_OPTIONS = [
  ('grpc.max_message_length', 2_000_000_000),
  ('grpc.max_receive_message_length', 2_000_000_000),
  ('grpc.max_send_message_length', 2_000_000_000),
]
WORKER_BINARY = os.path.join(os.path.dirname(tff.__file__), 'data', 'worker_binary')
# Concurrent computation calls per worker: one per core. On 2 cores that cut
# the round by 14% (heart) and 21% (cnn) against TFF's default (-1, read by
# the worker as 4 x cores) (`benchmarks/concurrency.py`, README there).
DEFAULT_CONCURRENCY = os.cpu_count() or 1


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
  """Caps glibc's malloc arenas in this process; False where there is no glibc.

  The `MALLOC_ARENA_MAX` environment variable does the same from process start;
  a value the user set wins.
  """
  if 'MALLOC_ARENA_MAX' in os.environ:
    return False
  try:
    libc = ctypes.CDLL('libc.so.6')
  except OSError:
    return False
  return bool(libc.mallopt(_M_ARENA_MAX, arenas))


def _die_with_parent() -> None:
  # Runs in the child before exec. A parent started in the background by a shell
  # (`cmd &`, nohup, some CI runners) ignores SIGINT, and ignored signals survive
  # exec: the worker, which stops on SIGINT by its default action, would then
  # ignore `stop_worker`. And if the parent dies the worker gets SIGKILL, which
  # nothing can ignore.
  signal.signal(signal.SIGINT, signal.SIG_DFL)
  libc = ctypes.CDLL(None, use_errno=True)
  libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
  """Returns a TCP port on loopback that is free right now."""
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def start_worker(
  port: int,
  *,
  max_concurrent_computation_calls: int = DEFAULT_CONCURRENCY,
  log_path: str | None = None,
  cwd: str | None = None,
  wrapper: tuple[str, ...] = (),
) -> subprocess.Popen:
  """Starts TFF's `worker_binary` on `port`; it dies with this process.

  Args:
    port: TCP port to serve on.
    max_concurrent_computation_calls: Passed to the worker; must be an int
      (a float makes the worker exit and TFF wait forever); <= 0 is TFF's
      default, 4 x cores.
    log_path: Where the worker's output goes (a temp file by default).
    cwd: The worker's working directory (a hospital's data root: relative shard
      names in computations resolve there).
    wrapper: A command the worker's command line is appended to, after '--'
      (`deployment.worker_namespace.command`: the worker in its own network namespace).

  Raises:
    WorkerError: The argument is not an int.
  """
  if isinstance(max_concurrent_computation_calls, bool) or not isinstance(
    max_concurrent_computation_calls, int
  ):
    raise WorkerError(
      f'max_concurrent_computation_calls must be an int, got {max_concurrent_computation_calls!r}'
    )
  if log_path is None:
    stale_files.sweep(LOG_PREFIX)  # Left by processes that were killed.
    fd, log_path = tempfile.mkstemp(prefix=stale_files.owned_name(LOG_PREFIX), suffix='.log')
    os.close(fd)
  with open(log_path, 'ab') as log:
    worker = [
      WORKER_BINARY,
      f'--port={port}',
      f'--max_concurrent_computation_calls={max_concurrent_computation_calls}',
    ]
    process = subprocess.Popen(
      [*wrapper, '--', *worker] if wrapper else worker,
      stdin=subprocess.DEVNULL,
      stdout=log,
      stderr=subprocess.STDOUT,
      preexec_fn=_die_with_parent,
      close_fds=True,
      cwd=cwd,
      env={'MALLOC_ARENA_MAX': str(MALLOC_ARENAS), **os.environ},
    )
  process.log_path = log_path
  return process


def stop_worker(process: subprocess.Popen, timeout: float = 10.0) -> None:
  """Stops a worker with SIGINT (it ignores SIGTERM), then SIGKILL if it hangs."""
  if process.poll() is not None:
    return
  process.send_signal(signal.SIGINT)
  try:
    process.wait(timeout)
  except subprocess.TimeoutExpired:
    process.kill()
    process.wait()


def wait_until_ready(stub, process: subprocess.Popen | None, what: str, timeout: float) -> None:
  """Polls `stub.is_ready` until true; raises WorkerError after `timeout` seconds."""
  deadline = time.monotonic() + timeout
  while not stub.is_ready:
    if process is not None and process.poll() is not None:
      raise WorkerError(
        f'{what} exited with code {process.returncode} before it was ready; '
        f'its log ({process.log_path}) ends with:\n{_tail(process.log_path)}'
      )
    if time.monotonic() > deadline:
      raise WorkerError(f'{what} was not ready after {timeout:.0f} s')
    time.sleep(0.05)


def _tail(path: str, lines: int = 10) -> str:
  with open(path, errors='replace') as f:
    return ''.join(f.readlines()[-lines:])


class OwnedWorker:
  """A worker started on first use and stopped by `stop()` or at interpreter exit."""

  def __init__(
    self,
    *,
    max_concurrent_computation_calls: int = DEFAULT_CONCURRENCY,
    ready_timeout: float = 60.0,
  ):
    self._max_calls = max_concurrent_computation_calls
    self._ready_timeout = ready_timeout
    self.process: subprocess.Popen | None = None
    self._channel = None
    self._stub = None
    atexit.register(self.stop)

  def stub(self):
    """The ready stub, (re)starting the worker if it is not running."""
    if self.process is None or self.process.poll() is not None:
      self.stop()
      port = free_port()
      self.process = start_worker(port, max_concurrent_computation_calls=self._max_calls)
      self._channel = grpc.insecure_channel(f'localhost:{port}', _GRPC_OPTIONS)
      self._stub = tff.framework.RemoteExecutorGrpcStub(self._channel)
      wait_until_ready(self._stub, self.process, 'the local TFF worker', self._ready_timeout)
    return self._stub

  def stop(self) -> None:
    """Stops the worker, if running, and removes its log."""
    if self._channel is not None:
      self._channel.close()
      self._channel = None
    if self.process is not None:
      stop_worker(self.process)
      with contextlib.suppress(OSError):
        os.remove(self.process.log_path)
      self.process = None


def install_owned_default_context() -> None:
  """Replaces TFF's default context (whose worker leaks) with one that we own.

  Called when this module is imported, so any TFF computation run by a process
  that imported tff_med, even outside `local_runtime`, uses a worker that
  stops at exit and dies with the process.
  """
  tff.framework.set_default_context(execution_context(OwnedWorker().stub))


# The worker and context of the enclosing `shared_local_runtime` blocks, innermost last.
_SHARED: list[tuple[OwnedWorker, object, int]] = []


@contextlib.contextmanager
def local_runtime(
  *,
  max_concurrent_computation_calls: int = DEFAULT_CONCURRENCY,
  ready_timeout: float = 60.0,
):
  """Runs the enclosed TFF computations on a worker that this block owns.

  Usage:
    with runtime.local_runtime():
      state = process.initialize()

  The worker starts on the first computation and stops when the block exits;
  the previous default context is restored, so blocks nest. Inside a
  `shared_local_runtime` block of the same concurrency, the block uses that
  block's worker instead of starting its own.

  Raises:
    WorkerError: The worker did not start or become ready in time.
  """
  if _SHARED and _SHARED[-1][2] == max_concurrent_computation_calls:
    worker, context, _ = _SHARED[-1]
    with tff.framework.get_context_stack().install(context):
      yield worker
    return
  worker = OwnedWorker(
    max_concurrent_computation_calls=max_concurrent_computation_calls, ready_timeout=ready_timeout
  )
  context = execution_context(worker.stub)
  try:
    with tff.framework.get_context_stack().install(context):
      yield worker
  finally:
    worker.stop()
    stop_context_thread(context)
    atexit.unregister(worker.stop)


@contextlib.contextmanager
def shared_local_runtime(*, max_concurrent_computation_calls: int = DEFAULT_CONCURRENCY):
  """A `local_runtime` whose worker the `local_runtime` blocks inside it reuse.

  A study runs dozens of runs, each in its own `local_runtime`; starting a
  worker for each took about a second of a 4 s run (profile of the comparison
  study, 2026-12-05). The worker keeps no state between computations: the
  comparison study's results.csv was bit for bit the same with one worker per
  run. It stops when this block exits.
  """
  with local_runtime(max_concurrent_computation_calls=max_concurrent_computation_calls) as worker:
    context = tff.framework.get_context_stack().current
    _SHARED.append((worker, context, max_concurrent_computation_calls))
    try:
      yield worker
    finally:
      _SHARED.pop()


limit_malloc_arenas()
install_owned_default_context()
