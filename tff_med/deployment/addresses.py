"""Which hospital's data lives behind which worker address, from a config string."""

from __future__ import annotations

import re

from tff_med.errors import ConfigError

_HOST = re.compile(r'^[A-Za-z0-9.\-]+$|^\[[0-9A-Fa-f:]+\]$')
# A hospital is a directory name under a worker's data root: no paths, no '..'.
_HOSPITAL = re.compile(r'^[A-Za-z0-9_.\-]+$')


def split_address(address: str, *, hospital: str = '') -> tuple[str, int]:
  """'host:port' -> (host, port).

  Raises:
    ConfigError: Not host:port, a bad host name or a port outside 1..65535.
  """
  who = f' for hospital {hospital!r}' if hospital else ''
  host, sep, port = address.rpartition(':')
  if not sep or not host or not _HOST.match(host) or not port.isdigit():
    raise ConfigError(f'worker address{who} must be host:port, got {address!r}')
  if not 0 < int(port) < 65536:
    raise ConfigError(f'worker port{who} must be in 1..65535, got {port}')
  return host, int(port)


def parse_workers(spec: str) -> dict[str, str]:
  """'cleveland=host:port,hungary=host:port' -> {'cleveland': 'host:port', ...}.

  Several hospitals may share one address (one worker serving their shards).

  Raises:
    ConfigError: An entry without '=', an empty hospital name or one that is a
      path, a malformed address, or a hospital named twice.
  """
  workers: dict[str, str] = {}
  for entry in (e.strip() for e in spec.split(',')):
    if not entry:
      continue
    hospital, sep, address = (p.strip() for p in entry.partition('='))
    if not sep or not hospital:
      raise ConfigError(
        f'deployment.workers entry {entry!r} must be hospital=host:port '
        '(e.g. cleveland=10.0.0.5:8000)'
      )
    if not _HOSPITAL.match(hospital) or hospital in ('.', '..'):
      raise ConfigError(
        f'hospital name {hospital!r} in deployment.workers must be a plain directory name '
        '(letters, digits, ".", "_", "-")'
      )
    if hospital in workers:
      raise ConfigError(f'hospital {hospital!r} is named twice in deployment.workers')
    split_address(address, hospital=hospital)
    workers[hospital] = address
  if not workers:
    raise ConfigError('deployment.workers names no hospital')
  return workers
