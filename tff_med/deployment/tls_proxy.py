"""A TLS-terminating proxy in front of TFF's worker, admitting only consortium certificates.

TFF's `worker_binary` speaks plain gRPC and listens on all interfaces. The
proxy listens on the hospital's public port, completes a TLS handshake that
requires a client certificate signed by the consortium CA (and presents the
hospital's own certificate, so the coordinator can check it), then relays the
bytes to the worker on loopback. Clients without a valid certificate never
reach the worker. The raw worker port must still be closed to the outside by
the hospital (firewall or network namespace; see the README): the worker
binary cannot be told to bind to loopback only. TFF has no TLS option; this is
ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading

from absl import logging

_CHUNK = 1 << 16


def server_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
  """TLS server context: our certificate, client certificates required and checked against `ca`."""
  context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
  context.load_cert_chain(cert, key)
  context.verify_mode = ssl.CERT_REQUIRED
  context.minimum_version = ssl.TLSVersion.TLSv1_2
  context.set_alpn_protocols(['h2'])  # gRPC insists on HTTP/2 by ALPN.
  return context


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
  try:
    while data := await reader.read(_CHUNK):
      writer.write(data)
      await writer.drain()
  except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
    pass
  finally:
    with contextlib.suppress(Exception):
      writer.close()


class TlsProxy:
  """Relays mutually authenticated TLS connections on `port` to `target_port` on loopback.

  Usage:
    proxy = TlsProxy(8000, worker_port, cert, key, ca)
    proxy.start()   # Raises OSError if the port is taken.
    ...
    proxy.stop()
  """

  def __init__(self, port: int, target_port: int, cert: str, key: str, ca: str, host: str = ''):
    self.port = port
    self._target_port = target_port
    self._context = server_context(cert, key, ca)
    self._host = host or None
    self._loop = asyncio.new_event_loop()
    self._server = None
    self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name='tls-proxy')
    self.refused = 0  # Handshakes that failed (no or bad client certificate).

  async def _handle(self, reader, writer) -> None:
    peer = writer.get_extra_info('peercert')
    subject = dict(x[0] for x in peer.get('subject', ())) if peer else {}
    logging.info('TLS client %s connected.', subject.get('commonName', '?'))
    try:
      up_reader, up_writer = await asyncio.open_connection('127.0.0.1', self._target_port)
    except OSError as e:
      logging.warning('TLS proxy: worker on port %d unreachable: %s', self._target_port, e)
      writer.close()
      return
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

  def _on_error(self, loop, context) -> None:
    exception = context.get('exception')
    if isinstance(exception, (ssl.SSLError, ConnectionError)):
      self.refused += 1
      logging.warning('TLS proxy refused a connection: %s', exception)
    else:
      loop.default_exception_handler(context)

  def start(self) -> None:
    """Binds the port and starts relaying in a background thread."""
    self._loop.set_exception_handler(self._on_error)
    self._server = self._loop.run_until_complete(
      asyncio.start_server(
        self._handle, self._host, self.port, ssl=self._context, ssl_handshake_timeout=10
      )
    )
    self._thread.start()

  def stop(self) -> None:
    """Stops accepting and closes the loop."""
    if self._server is None:
      return

    async def close():
      self._server.close()
      await self._server.wait_closed()

    asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
    self._loop.call_soon_threadsafe(self._loop.stop)
    self._thread.join(10)
    self._server = None
