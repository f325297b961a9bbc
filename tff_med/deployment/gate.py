"""The hospital's gate: TFF's executor service, relayed to the worker only if approved.

TFF's `worker_binary` runs any computation an authenticated caller sends. The
gate is the only port the coordinator reaches. It speaks TFF's own executor
service (`executor_pb2_grpc.ExecutorGroup`), parses every `CreateValue`
request with TFF's protos and relays it to the worker on loopback only if:

- every computation in it has a fingerprint (`fingerprint.py`) in one of the
  plans this hospital approved (`approvals.py`), unless the development flag
  admits unapproved ones, loudly, in every log line that does;
- every string in it is a client input (`remote_data.parse_client_input`):
  '<hospital>/<train|test>.csv' and numbers, where the hospital is a plain
  name (no '/', no '..'), so no read reaches outside the data root, and is one
  this worker validated at start or one of the approved plans' consortium
  (TFF's mergeable execution hands the first worker's inputs to whichever
  worker finishes a call; they are passed along, not read, there);
- it carries no sequence (a serialized dataset graph could read any file);
- a mask token ('masks/<hospital>/...', `learning.secure.masks`) names a
  hospital of the consortium; for this worker's own hospital the gate writes
  the round's mask first (refusing a round of one hospital, or without its
  key), so the worker's computation finds it.

Anything else is answered with PERMISSION_DENIED, naming the hospital and the
fingerprint; the coordinator turns it into a DeploymentError. With TLS files
the gate terminates mutual TLS and admits only the coordinator's certificate
(its common name, a client-only key usage, and not in the hospital's CRL).
TFF has no such gate; this is ours.
"""

from __future__ import annotations

import hashlib
from concurrent import futures

import grpc
import numpy as np
from absl import logging
from tensorflow_federated.proto.v0 import data_type_pb2, executor_pb2
from tensorflow_federated.python.core.impl.compiler import array as tff_array

from tff_med.deployment import certificates, fingerprint, remote_data
from tff_med.deployment.approvals import Approvals
from tff_med.deployment.tls_identity import TlsFiles, peer_problem
from tff_med.deployment.worker_link import MAX_MESSAGE_BYTES
from tff_med.learning.secure import masks as masks_lib

SERVICE = '/tensorflow_federated.v0.ExecutorGroup/'
METHODS = (
  'GetExecutor',
  'CreateValue',
  'CreateCall',
  'CreateStruct',
  'CreateSelection',
  'Compute',
  'Dispose',
  'DisposeExecutor',
)
_SERVER_OPTIONS = [
  ('grpc.max_receive_message_length', MAX_MESSAGE_BYTES),
  ('grpc.max_send_message_length', MAX_MESSAGE_BYTES),
  ('grpc.max_connection_idle_ms', 600_000),
  ('grpc.server_handshake_timeout_ms', 10_000),
  ('grpc.http2.max_ping_strikes', 2),
]


class Refused(Exception):
  """A request the gate does not relay; the message names what and why."""


class Gate:
  """Serves `port` and relays approved requests to TFF's worker at `worker`.

  Args:
    port: The port the coordinator connects to.
    worker: The raw TFF worker's gRPC target ('unix:PATH' or '127.0.0.1:PORT').
    hospitals: The hospitals whose shards this worker validated.
    approvals: The approved plans; None admits every computation (development only).
    tls: This hospital's certificate, key and the consortium CA, or None for plain gRPC.
    coordinator: The common name the coordinator's certificate must carry.
    max_workers: Requests served at once (further ones wait).
    masks: This hospital's mask writer (secure aggregation), or None.
  """

  def __init__(
    self,
    port: int,
    worker: str,
    hospitals: list[str],
    approvals: Approvals | None,
    tls: TlsFiles | None = None,
    coordinator: str = 'coordinator',
    max_workers: int = 16,
    masks: masks_lib.MaskWriter | None = None,
  ):
    self.port = port
    self.hospitals = list(hospitals)
    self._approvals = approvals
    self._tls = tls
    self._crl = certificates.load_revocation_list(tls.crl, tls.ca) if tls and tls.crl else None
    self._coordinator = coordinator
    self._masks = masks
    self._known: dict[str, str] = {}  # SHA-256 of a computation's bytes -> its fingerprint.
    self._worker = grpc.insecure_channel(worker, _SERVER_OPTIONS)
    self._server = grpc.server(
      futures.ThreadPoolExecutor(max_workers, thread_name_prefix='gate'),
      handlers=[_Handler(self)],
      options=_SERVER_OPTIONS,
      maximum_concurrent_rpcs=4 * max_workers,
    )

  def _who(self) -> str:
    return f'the gate of {", ".join(self.hospitals)}'

  def _fingerprint(self, comp) -> str:
    raw = hashlib.sha256(comp.SerializeToString(deterministic=True)).hexdigest()
    if raw not in self._known:
      self._known[raw] = fingerprint.fingerprint(comp)
    return self._known[raw]

  def check_value(self, request: bytes) -> None:
    """Raises Refused unless every computation and string in a CreateValue request is allowed."""
    value = executor_pb2.CreateValueRequest.FromString(request).value
    for kind, leaf in fingerprint.walk_value(value):
      if kind == 'sequence':
        raise Refused(f'{self._who()} refuses a sequence value: its data never comes from outside')
      if kind == 'computation':
        self._check_computation(leaf)
      elif kind == 'array':
        for text in _strings(leaf):
          self._check_input(text)

  def _check_input(self, text: str) -> None:
    request = masks_lib.parse_token(text)
    if request is not None:
      self._check_mask(request)
      return
    parsed = remote_data.parse_client_input(text)
    if parsed is not None and self._approvals is None:
      return  # Development: any plain hospital name (reads stay inside the data root).
    if parsed is None or parsed[0] not in self._consortium():
      raise Refused(
        f'{self._who()} refuses the input {text[:80]!r}: it names no shard of the hospitals '
        f'this worker validated ({", ".join(self.hospitals)}) or its approved plans name'
      )

  def _consortium(self) -> set[str]:
    return set(self.hospitals) | (self._approvals.hospitals() if self._approvals else set())

  def _check_mask(self, request: masks_lib.MaskRequest) -> None:
    """Writes this hospital's mask for `request`, or passes another's token along (merge)."""
    unknown = sorted({request.hospital, *request.peers} - self._consortium())
    if self._approvals is not None and unknown:
      raise Refused(f'{self._who()} refuses a mask token naming {", ".join(unknown)}')
    if request.hospital not in self.hospitals:
      return  # Another hospital's input, handed along by TFF's mergeable execution.
    if self._masks is None:
      raise Refused(f'{self._who()} has no mask key (--mask_key): it runs no secure aggregation')
    try:
      self._masks.write(request)
    except masks_lib.MaskError as e:
      raise Refused(str(e)) from e
    logging.info(
      'Mask written: session %s round %d, hospitals %s.',
      request.session,
      request.round_num,
      ', '.join(request.peers),
    )

  def _check_computation(self, comp) -> None:
    fp = self._fingerprint(comp)
    if self._approvals is None:
      logging.warning(
        'UNAPPROVED computation %s admitted (--allow_unapproved_computations: development only)',
        fingerprint.short(fp),
      )
      return
    plan = self._approvals.plan_of(fp)
    if plan is None:
      raise Refused(
        f'{self._who()} refuses computation {fingerprint.short(fp)}: it is in no plan approved '
        f'in {self._approvals.directory} (approved: {self._approvals.describe()})'
      )
    logging.info('Computation %s admitted (plan %s).', fingerprint.short(fp), plan)

  def admit_peer(self, context) -> None:
    """Raises Refused unless the caller is the coordinator (with TLS)."""
    if self._tls is None:
      return
    problem = peer_problem(context.auth_context(), self._coordinator, self._crl)
    if problem:
      raise Refused(f'{self._who()} refuses the caller: {problem}')

  def forward(self, method: str):
    """A relay of `method` to the worker, as raw bytes."""
    return self._worker.unary_unary(SERVICE + method)

  def start(self) -> None:
    """Binds the port (OSError if taken) and starts serving."""
    address = f'[::]:{self.port}'
    if self._tls is not None:
      bound = self._server.add_secure_port(address, self._tls.server_credentials())
    else:
      bound = self._server.add_insecure_port(address)
    if not bound:
      raise OSError(98, 'Address already in use')
    self._server.start()

  def stop(self) -> None:
    """Stops serving and closes the channel to the worker."""
    self._server.stop(grace=1).wait(5)
    self._worker.close()


def _strings(array) -> list[str]:
  """The strings in a TFF array proto (none if it holds numbers)."""
  if array.dtype != data_type_pb2.DataType.DT_STRING:
    return []
  values = tff_array.from_proto_content(array) if array.content else tff_array.from_proto(array)
  return [
    v.decode('utf-8', 'replace') if isinstance(v, bytes) else str(v)
    for v in np.asarray(values, dtype=object).ravel()
  ]


class _Handler(grpc.GenericRpcHandler):
  def __init__(self, gate: Gate):
    self._gate = gate

  def service(self, details):
    service, _, method = details.method.rpartition('/')
    if service + '/' != SERVICE or method not in METHODS:
      return None
    forward = self._gate.forward(method)

    def handle(request: bytes, context):
      try:
        self._gate.admit_peer(context)
        if method == 'CreateValue':
          self._gate.check_value(request)
      except Refused as e:
        logging.warning('Refused: %s', e)
        context.abort(grpc.StatusCode.PERMISSION_DENIED, str(e))
      try:
        return forward(request)
      except grpc.RpcError as e:
        context.abort(e.code(), e.details())

    return grpc.unary_unary_rpc_method_handler(handle)
