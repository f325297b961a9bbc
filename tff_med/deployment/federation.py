"""The coordinator's connections to the hospitals' TFF workers, and who gets which call.

Built from TFF's public pieces, as TFF_NOTES records: per worker address a gRPC
channel (mutual TLS when configured), a `RemoteExecutorGrpcStub`, a
`RemoteExecutor` stack and an `AsyncExecutionContext`; for each call, a
`MergeableCompExecutionContext` over the contexts of exactly the hospitals in
that call, in the call's order, so each hospital's client input (a shard name)
lands on the worker that holds its shard. TFF retries an unreachable worker
forever; every call here runs under a deadline and a stuck call becomes a
`DeploymentError` naming the hospitals whose workers stopped answering.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time

import grpc
import tensorflow_federated as tff

from tff_med.deployment.addresses import split_address
from tff_med.deployment.tls_identity import TlsFiles
from tff_med.errors import ConfigError, DeploymentError

# The largest message either side accepts (a gate's limit too): far above any model
# the pipeline trains, far below what could exhaust a machine.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
_GRPC_OPTIONS = [
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


def _connect_problem(address: str, timeout: float) -> str | None:
  """Why a TCP connection to `address` fails ('connection refused': nothing listens), or None."""
  try:
    with socket.create_connection(split_address(address), timeout=timeout):
      return None
  except OSError as e:
    return f'cannot connect: {e.strerror or e}'


def _async_context(stub) -> tff.framework.AsyncExecutionContext:
  def stack_fn(cardinalities):
    cardinalities.setdefault(tff.CLIENTS, 0)
    executor = tff.framework.RemoteExecutor(stub)
    executor.set_cardinalities(cardinalities)
    return executor

  return tff.framework.AsyncExecutionContext(
    executor_fn=tff.framework.ResourceManagingExecutorFactory(executor_stack_fn=stack_fn),
    compiler_fn=tff.backends.native.desugar_and_transform_to_native,
    transform_args=tff.tensorflow.transform_args,
    transform_result=tff.tensorflow.transform_result,
  )


class _DeadlineContext(tff.framework.SyncContext):
  """Runs each call of `inner` in a daemon thread and gives up after `timeout` seconds."""

  def __init__(self, inner, timeout: float, on_timeout):
    self._inner = inner
    self._timeout = timeout
    self._on_timeout = on_timeout

  def invoke(self, comp, arg):
    outcome = {}

    def call():
      try:
        outcome['value'] = self._inner.invoke(comp, arg)
      except BaseException as e:  # Re-raised in the caller's thread.
        outcome['error'] = e

    thread = threading.Thread(target=call, daemon=True, name='tff-call')
    thread.start()
    thread.join(self._timeout)
    if thread.is_alive():
      raise self._on_timeout()
    if 'error' in outcome:
      error = outcome['error']
      if isinstance(error, grpc.Call) and error.code() == grpc.StatusCode.PERMISSION_DENIED:
        hint = (
          '; to see how this run differs from the plan the hospitals approved, set '
          'deployment.plan to that plan directory'
          if 'refuses computation' in error.details()
          else ''
        )
        raise DeploymentError(error.details() + hint) from error
      raise error
    return outcome['value']


class RemoteFederation:
  """Connections to the workers of `workers` ({hospital: 'host:port'})."""

  def __init__(
    self,
    workers: dict[str, str],
    *,
    tls: TlsFiles | None = None,
    ready_timeout: float = 30.0,
    call_timeout: float = 300.0,
  ):
    self.workers = dict(workers)
    self._tls = tls
    self._ready_timeout = ready_timeout
    self._call_timeout = call_timeout
    self._channels: dict[str, grpc.Channel] = {}
    self._stubs = {}
    self._contexts = {}
    self._routes = {}  # Hospitals in call order -> context (each compiles its calls once).

  @property
  def hospitals(self) -> list[str]:
    return list(self.workers)

  def connect(self) -> None:
    """Opens a channel per address and waits until every worker is ready.

    Raises:
      ConfigError: The coordinator's own certificate is expired or foreign.
      DeploymentError: A worker is unreachable, refuses our certificate, or is
        not ready within `ready_timeout`, naming its hospitals and address.
    """
    if self._tls is not None:
      self._tls.check(who='coordinator')
    for address in dict.fromkeys(self.workers.values()):
      if self._tls is not None:
        channel = grpc.secure_channel(
          address, self._tls.channel_credentials(), _GRPC_OPTIONS + self._pin(address)
        )
      else:
        channel = grpc.insecure_channel(address, _GRPC_OPTIONS)
      self._channels[address] = channel
      self._stubs[address] = tff.framework.RemoteExecutorGrpcStub(channel)
      self._contexts[address] = _async_context(self._stubs[address])
    deadline = time.monotonic() + self._ready_timeout
    for address, stub in self._stubs.items():
      while not stub.is_ready:
        if time.monotonic() > deadline:
          raise DeploymentError(self._not_ready(address))
        time.sleep(0.05)

  def _pin(self, address: str) -> list:
    """gRPC options that accept only the certificate of the hospital served at `address`."""
    return [('grpc.ssl_target_name_override', self.workers_at(address)[0])]

  def workers_at(self, address: str) -> list[str]:
    """The hospitals whose shards the worker at `address` serves."""
    return [h for h, a in self.workers.items() if a == address]

  def _hospitals_at(self, address: str) -> str:
    return ', '.join(self.workers_at(address))

  def _not_ready(self, address: str) -> str:
    message = (
      f'the worker of {self._hospitals_at(address)} at {address} was not ready within '
      f'{self._ready_timeout:g} s'
    )
    if self._tls is not None:
      reason = tls_preflight(address, self._tls, timeout=5, name=self.workers_at(address)[0])
    else:
      reason = _connect_problem(address, timeout=5)
    if reason:
      message += f' ({reason})'
    return message + (
      '; is experiments.hospital_worker running there? A worker that stopped at start '
      '(a bad shard, a port in use) printed why on its own console.'
    )

  def _timeout_error(self, hospitals: list[str]) -> DeploymentError:
    silent = [
      address
      for address in dict.fromkeys(self.workers[h] for h in hospitals)
      if not self._stubs[address].is_ready
    ]
    who = '; '.join(f'{self._hospitals_at(a)} at {a}' for a in silent) or 'no worker went away'
    return DeploymentError(
      f'no answer within {self._call_timeout:g} s (deployment.call_timeout) from the workers '
      f'of {", ".join(hospitals)}; unreachable: {who}. The last checkpoint is intact: restart '
      'the worker and rerun the same command to resume.'
    )

  @contextlib.contextmanager
  def route(self, hospitals: list[str]):
    """Runs the enclosed TFF calls with client i on the worker of `hospitals[i]`."""
    unknown = [h for h in hospitals if h not in self.workers]
    if unknown:
      raise ConfigError(f'hospitals {unknown} have no worker in deployment.workers')
    key = tuple(hospitals)
    if key not in self._routes:
      mergeable = tff.framework.MergeableCompExecutionContext(
        [self._contexts[self.workers[h]] for h in hospitals],
        compiler_fn=tff.backends.native.compile_to_mergeable_comp_form,
        transform_args=tff.tensorflow.transform_args,
        transform_result=tff.tensorflow.transform_result,
      )
      self._routes[key] = _DeadlineContext(
        mergeable, self._call_timeout, lambda: self._timeout_error(list(key))
      )
    with tff.framework.get_context_stack().install(self._routes[key]):
      yield

  def close(self) -> None:
    """Closes every channel."""
    for channel in self._channels.values():
      channel.close()
    self._channels.clear()
