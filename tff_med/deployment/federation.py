"""The coordinator's connections to the hospitals' TFF workers, and who gets which call.

Per worker address a `worker_link.WorkerLink` (TFF's stub and execution
context over a gRPC channel, mutual TLS when configured); for each call, TFF's
`MergeableCompExecutionContext` over the links of exactly the hospitals in that
call, in the call's order, so each hospital's client input (a shard name) lands
on the worker that holds its shard.

TFF retries an unreachable worker forever. Here every call runs under a
deadline (`deployment.call_timeout`), and a worker whose connection broke, or
that had not answered at the deadline, is dropped: its channel is closed (which
ends the abandoned call), and the call raises `HospitalsUnavailable` naming its
hospitals, for `run.attendance` to redo the round without them or stop. A
dropped worker is probed with a fresh channel (`available`) and rejoins once it
answers within `deployment.probe_timeout`.
"""

from __future__ import annotations

import contextlib
import threading
import time

import grpc
import tensorflow_federated as tff
from absl import logging

from tff_med import contexts
from tff_med.deployment import compiled, worker_link
from tff_med.deployment.tls_identity import TlsFiles
from tff_med.deployment.worker_link import WorkerLink, WorkerLost
from tff_med.errors import ConfigError, DeploymentError, HospitalsUnavailable

# How long an abandoned call may take to end once its worker's channel is closed.
_ABANDON_SECONDS = 5.0


def _worker_lost(error: BaseException) -> WorkerLost | None:
  """The `WorkerLost` that caused `error`, if any."""
  while error is not None:
    if isinstance(error, WorkerLost):
      return error
    error = error.__cause__ or error.__context__
  return None


def _permission_error(error: grpc.Call) -> DeploymentError:
  hint = (
    '; to see how this run differs from the plan the hospitals approved, set '
    'deployment.plan to that plan directory'
    if 'refuses computation' in error.details()
    else ''
  )
  return DeploymentError(error.details() + hint)


class _DeadlineContext(tff.framework.SyncContext):
  """Runs each call of `inner` in a thread; raises `on_timeout()` after `timeout` seconds.

  `on_lost(WorkerLost)` turns a broken connection into the error to raise.
  """

  def __init__(self, inner, timeout: float, on_timeout, on_lost):
    self._inner = inner
    self._timeout = timeout
    self._on_timeout = on_timeout
    self._on_lost = on_lost
    self._thread: threading.Thread | None = None

  def close(self) -> None:
    """Ends the event-loop thread of TFF's context, once its last call has ended."""
    if self._thread is not None:
      self._thread.join(_ABANDON_SECONDS)
    contexts.stop_context_thread(self._inner)

  def invoke(self, comp, arg):
    outcome = {}

    def call():
      try:
        outcome['value'] = self._inner.invoke(comp, arg)
      except BaseException as e:  # Re-raised in the caller's thread.
        outcome['error'] = e

    thread = threading.Thread(target=call, daemon=True, name='tff-call')
    self._thread = thread
    thread.start()
    thread.join(self._timeout)
    if thread.is_alive():
      raise self._on_timeout()
    error = outcome.get('error')
    if error is None:
      return outcome['value']
    if isinstance(error, grpc.Call) and error.code() == grpc.StatusCode.PERMISSION_DENIED:
      raise _permission_error(error) from error
    lost = _worker_lost(error)
    if lost is not None:
      raise self._on_lost(lost) from error
    raise error


class RemoteFederation:
  """Connections to the workers of `workers` ({hospital: 'host:port'})."""

  def __init__(
    self,
    workers: dict[str, str],
    *,
    tls: TlsFiles | None = None,
    ready_timeout: float = 30.0,
    call_timeout: float = 300.0,
    probe_timeout: float = 5.0,
  ):
    self.workers = dict(workers)
    self._tls = tls
    self._ready_timeout = ready_timeout
    self._call_timeout = call_timeout
    self._probe_timeout = probe_timeout
    self._links: dict[str, WorkerLink] = {}
    self._lost: dict[str, str] = {}  # Address -> why its worker was dropped.
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
      self._links[address] = self._open(address)
    deadline = time.monotonic() + self._ready_timeout
    for address, link in self._links.items():
      while not link.ready:
        if time.monotonic() > deadline:
          raise DeploymentError(self._not_ready(address))
        time.sleep(0.05)

  def _open(self, address: str) -> WorkerLink:
    if self._tls is None:
      return WorkerLink(address)
    # Accept only the certificate of the hospital served at `address`.
    pin = [('grpc.ssl_target_name_override', self.workers_at(address)[0])]
    return WorkerLink(address, self._tls.channel_credentials(), pin)

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
      reason = worker_link.tls_preflight(
        address, self._tls, timeout=5, name=self.workers_at(address)[0]
      )
    else:
      reason = worker_link.connect_problem(address, timeout=5)
    if reason:
      message += f' ({reason})'
    return message + (
      '; is experiments.hospital_worker running there? A worker that stopped at start '
      '(a bad shard, a port in use) printed why on its own console.'
    )

  def _drop(self, address: str, reason: str) -> None:
    """Closes the channel to `address` (ending its calls) until it answers a probe again."""
    self._lost[address] = reason
    link = self._links.pop(address, None)
    if link is not None:
      link.close()
    served = set(self.workers_at(address))
    for key in [k for k in self._routes if served.intersection(k)]:
      self._routes.pop(key).close()
    logging.warning(
      'Dropped the worker of %s at %s: %s.', self._hospitals_at(address), address, reason
    )

  def _unavailable(self, hospitals, addresses) -> HospitalsUnavailable:
    named = [h for h in hospitals if self.workers[h] in addresses]
    reasons = '; '.join(f'the worker at {a}: {self._lost[a]}' for a in dict.fromkeys(addresses))
    return HospitalsUnavailable(named, reasons)

  def _on_timeout(self, hospitals: list[str]) -> DeploymentError:
    """Drops the workers that had not answered once the call's deadline passed (closing
    their routes ends the abandoned call: `_DeadlineContext.close`)."""
    addresses = dict.fromkeys(self.workers[h] for h in hospitals)
    silent = [a for a in addresses if a in self._links and self._links[a].busy]
    if not silent:
      return DeploymentError(
        f'a call on {", ".join(hospitals)} did not end within {self._call_timeout:g} s '
        '(deployment.call_timeout), though every worker had answered; rerun to resume'
      )
    for address in silent:
      self._drop(address, f'no answer within {self._call_timeout:g} s (deployment.call_timeout)')
    return self._unavailable(hospitals, silent)

  def _on_lost(self, hospitals: list[str], lost: WorkerLost) -> HospitalsUnavailable:
    if lost.address in self._links:
      self._drop(lost.address, lost.reason)
    return self._unavailable(hospitals, [lost.address])

  @contextlib.contextmanager
  def route(self, hospitals: list[str]):
    """Runs the enclosed TFF calls with client i on the worker of `hospitals[i]`.

    Raises:
      ConfigError: A hospital has no worker.
      HospitalsUnavailable: A hospital's worker was dropped and has not
        rejoined (`available`), or is dropped during the call.
    """
    unknown = [h for h in hospitals if h not in self.workers]
    if unknown:
      raise ConfigError(f'hospitals {unknown} have no worker in deployment.workers')
    out = [self.workers[h] for h in hospitals if self.workers[h] in self._lost]
    if out:
      raise self._unavailable(hospitals, out)
    key = tuple(hospitals)
    if key not in self._routes:
      mergeable = tff.framework.MergeableCompExecutionContext(
        [self._links[self.workers[h]].context for h in hospitals],
        compiler_fn=compiled.mergeable_form,
        transform_args=tff.tensorflow.transform_args,
        transform_result=tff.tensorflow.transform_result,
      )
      self._routes[key] = _DeadlineContext(
        mergeable,
        self._call_timeout,
        lambda: self._on_timeout(list(key)),
        lambda lost: self._on_lost(list(key), lost),
      )
    with tff.framework.get_context_stack().install(self._routes[key]):
      yield

  def available(self, hospitals: list[str]) -> list[str]:
    """The `hospitals` whose workers answer; a dropped worker is probed and rejoins if it does.

    Probes run in parallel, each with a fresh channel and `deployment.probe_timeout`.
    """
    probes = {
      a: self._open(a) for a in dict.fromkeys(self.workers[h] for h in hospitals) if a in self._lost
    }
    deadline = time.monotonic() + self._probe_timeout
    for address, link in probes.items():
      if link.wait_ready(max(0.0, deadline - time.monotonic())):
        self._links[address] = link
        del self._lost[address]
        logging.warning(
          'The worker of %s at %s answers again: it rejoins with the current model.',
          self._hospitals_at(address),
          address,
        )
      else:
        link.close()
    return [h for h in hospitals if self.workers[h] not in self._lost]

  def close(self) -> None:
    """Closes every channel, then the calls' contexts and their threads."""
    for link in self._links.values():
      link.close()
    self._links.clear()
    for route in self._routes.values():
      route.close()
    self._routes.clear()
