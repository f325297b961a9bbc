"""One coordinator-to-worker connection: a gRPC channel, TFF's stub and its execution context.

Built from TFF's public pieces, as TFF_NOTES records: a gRPC channel (mutual TLS
when configured), `RemoteExecutorGrpcStub`, a `RemoteExecutor` stack and an
`AsyncExecutionContext`. Two changes, because TFF has nothing for a worker that
goes away (it retries a broken connection forever):

- the stub turns a broken connection (gRPC UNAVAILABLE, or FAILED_PRECONDITION
  from a restarted worker that lost its executors) into `WorkerLost` at once,
  instead of TFF's retryable error, so a round can be redone without the
  hospital (`run.attendance`);
- the stub counts its requests in flight (`busy`), so a round deadline names
  the worker the coordinator was waiting for, not the ones queued behind it.
"""

from __future__ import annotations

import socket
import ssl

import grpc
import tensorflow_federated as tff

from tff_med.deployment import compiled
from tff_med.deployment.addresses import split_address
from tff_med.deployment.tls_identity import TlsFiles

# The largest message either side accepts (a gate's limit too): far above any model
# the pipeline trains, far below what could exhaust a machine.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
GRPC_OPTIONS = [
  ('grpc.max_receive_message_length', MAX_MESSAGE_BYTES),
  ('grpc.max_send_message_length', MAX_MESSAGE_BYTES),
]


def tls_preflight(address: str, tls: TlsFiles, timeout: float, name: str) -> str | None:
  """Why a mutual-TLS handshake with `address`, expecting `name`'s certificate, fails, or None."""
  host, port = split_address(address)
  context = ssl.create_default_context(cafile=tls.ca)
  context.load_cert_chain(tls.cert, tls.key)
  context.set_alpn_protocols(['h2'])
  try:
    with socket.create_connection((host, port), timeout=timeout) as raw:
      with context.wrap_socket(raw, server_hostname=name) as conn:
        # TLS 1.3 servers reject a client certificate after the handshake: wait for an alert.
        conn.settimeout(1.0)
        try:
          conn.recv(1)
        except TimeoutError:
          return None
  except ssl.SSLError as e:
    return f'TLS handshake failed: {e.reason or e}'
  except OSError as e:
    return f'cannot connect: {e.strerror or e}'
  return None


def connect_problem(address: str, timeout: float) -> str | None:
  """Why a TCP connection to `address` fails ('connection refused': nothing listens), or None."""
  try:
    with socket.create_connection(split_address(address), timeout=timeout):
      return None
  except OSError as e:
    return f'cannot connect: {e.strerror or e}'


class WorkerLost(Exception):
  """The connection to the worker at `address` broke during a call."""

  def __init__(self, address: str, cause: Exception):
    self.address = address
    code = getattr(cause, 'code', None)
    self.reason = f'connection lost ({code().name})' if callable(code) else 'connection lost'
    super().__init__(f'{address}: {self.reason}')


def _fail_fast(method_name: str, *, dispose: bool = False):
  parent = getattr(tff.framework.RemoteExecutorGrpcStub, method_name)

  def call(self, request):
    self.in_flight += 1
    try:
      return parent(self, request)
    except tff.framework.RetryableError as e:
      raise WorkerLost(self.address, e) from e
    except ValueError as e:  # gRPC's 'Cannot invoke RPC on closed channel!'
      if not self.closed:
        raise
      if dispose:  # TFF frees values as they are collected; a dropped worker has none left.
        return None
      raise WorkerLost(self.address, e) from e
    finally:
      self.in_flight -= 1

  call.__name__ = method_name
  call.__doc__ = f"TFF's `{method_name}`; a broken connection raises `WorkerLost`."
  return call


class _FailFastStub(tff.framework.RemoteExecutorGrpcStub):
  """TFF's gRPC stub, except that a broken connection raises `WorkerLost` (no retry).

  TFF's remote executor calls its stub synchronously inside its coroutines, so
  one hospital's call in flight blocks the others' in the same round: `in_flight`
  names the worker the coordinator is actually waiting for.
  """

  def __init__(self, channel: grpc.Channel, address: str):
    super().__init__(channel)
    self.address = address
    self.in_flight = 0
    self.closed = False

  get_executor = _fail_fast('get_executor')
  create_value = _fail_fast('create_value')
  create_struct = _fail_fast('create_struct')
  create_call = _fail_fast('create_call')
  create_selection = _fail_fast('create_selection')
  compute = _fail_fast('compute')
  dispose = _fail_fast('dispose', dispose=True)
  dispose_executor = _fail_fast('dispose_executor', dispose=True)


def _async_context(stub) -> tff.framework.AsyncExecutionContext:
  def stack_fn(cardinalities):
    cardinalities.setdefault(tff.CLIENTS, 0)
    executor = tff.framework.RemoteExecutor(stub)
    executor.set_cardinalities(cardinalities)
    return executor

  return tff.framework.AsyncExecutionContext(
    executor_fn=tff.framework.ResourceManagingExecutorFactory(executor_stack_fn=stack_fn),
    compiler_fn=compiled.native,
    transform_args=tff.tensorflow.transform_args,
    transform_result=tff.tensorflow.transform_result,
  )


class WorkerLink:
  """A fresh channel to the worker at `address`, with its stub and execution context.

  Args:
    address: 'host:port'.
    credentials: gRPC channel credentials (mutual TLS), or None for plain gRPC.
    options: Extra gRPC channel options (e.g. the expected certificate name).
  """

  def __init__(self, address: str, credentials=None, options=()):
    self.address = address
    options = GRPC_OPTIONS + list(options)
    if credentials is not None:
      self.channel = grpc.secure_channel(address, credentials, options)
    else:
      self.channel = grpc.insecure_channel(address, options)
    self.stub = _FailFastStub(self.channel, address)
    self.context = _async_context(self.stub)

  @property
  def ready(self) -> bool:
    """True while the connection is up."""
    return self.stub.is_ready

  @property
  def busy(self) -> bool:
    """True while a request to this worker has not been answered."""
    return self.stub.in_flight > 0

  def wait_ready(self, timeout: float) -> bool:
    """Waits up to `timeout` seconds for the connection; True if it is up."""
    try:
      grpc.channel_ready_future(self.channel).result(timeout=timeout)
      return True
    except grpc.FutureTimeoutError:
      return False

  def close(self) -> None:
    """Closes the channel; calls still in flight end with `WorkerLost`."""
    self.stub.closed = True
    self.channel.close()
