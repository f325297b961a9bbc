"""TFF's worker in a network namespace of its own, reachable only through a Unix socket.

TFF's `worker_binary` listens on every interface and cannot be told otherwise.
Run inside a fresh network namespace (`unshare --net`), it has only a loopback
interface that nothing outside can reach; this module, started there as the
worker's parent, brings that loopback up, starts the worker on it and relays a
Unix socket (a file, visible across network namespaces) to it. The hospital's
gate connects to that socket; no port of the worker exists on the machine's
network. `command` builds the `unshare` line; `available` says whether this
machine allows it (else the documented firewall rule is the fallback).

This module imports only the standard library: it runs before any TensorFlow.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys

_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_PR_SET_PDEATHSIG = 1


def _unshare() -> list[str]:
  # Root can make a network namespace; anyone else needs a user namespace with it.
  return ['unshare', '--net'] + ([] if os.geteuid() == 0 else ['--map-root-user'])


def available() -> bool:
  """Whether this machine lets us start a process in a new network namespace."""
  try:
    return subprocess.run([*_unshare(), 'true'], capture_output=True, timeout=10).returncode == 0
  except (OSError, subprocess.TimeoutExpired):
    return False


def command(socket_path: str, port: int) -> list[str]:
  """The prefix that runs a worker command isolated, served at `socket_path`."""
  module = 'tff_med.deployment.worker_namespace'
  return [*_unshare(), sys.executable, '-m', module, f'--socket={socket_path}', f'--port={port}']


def _loopback_up() -> None:
  with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    request = struct.pack('16sH', b'lo', 0)
    flags = struct.unpack('16sH', fcntl.ioctl(s, _SIOCGIFFLAGS, request))[1]
    fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack('16sH', b'lo', flags | _IFF_UP))


async def _pipe(reader, writer) -> None:
  try:
    while data := await reader.read(1 << 16):
      writer.write(data)
      await writer.drain()
  except ConnectionError:
    pass
  finally:
    with contextlib.suppress(Exception):
      writer.close()


async def _relay(socket_path: str, port: int, worker: subprocess.Popen) -> None:
  async def handle(reader, writer):
    try:
      up_reader, up_writer = await asyncio.open_connection('127.0.0.1', port)
    except OSError:
      writer.close()
      return
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

  server = await asyncio.start_unix_server(handle, socket_path)
  os.chmod(socket_path, 0o600)
  async with server:
    while worker.poll() is None:
      await asyncio.sleep(0.2)


def main() -> int:
  """Inside the namespace: loopback up, the worker started, the socket relayed to it."""
  parser = argparse.ArgumentParser()
  parser.add_argument('--socket', required=True)
  parser.add_argument('--port', type=int, required=True)
  parser.add_argument('worker', nargs=argparse.REMAINDER)
  args = parser.parse_args()
  _loopback_up()
  libc = ctypes.CDLL(None, use_errno=True)
  worker = subprocess.Popen(
    args.worker[1:] if args.worker[:1] == ['--'] else args.worker,
    preexec_fn=lambda: libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL),
  )
  # The hospital stops us with SIGINT (as it stops a worker): pass it on.
  signal.signal(signal.SIGINT, lambda *_: worker.send_signal(signal.SIGINT))
  signal.signal(signal.SIGTERM, lambda *_: worker.send_signal(signal.SIGINT))
  try:
    asyncio.run(_relay(args.socket, args.port, worker))
  finally:
    with contextlib.suppress(OSError):
      os.remove(args.socket)
  return worker.wait()


if __name__ == '__main__':
  sys.exit(main())
