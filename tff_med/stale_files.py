"""Temporary files named after the process that owns them, and swept once it is gone.

A run killed with SIGKILL cannot remove its private shard directory or its
worker's log. Each is created under the system's temp directory with the
owner's PID in its name (`owned_name`), and every later start removes those
whose owner no longer runs (`sweep`), so a crash leaves patient arrays behind
only until the next run on the machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile


def owned_name(prefix: str) -> str:
  """`prefix` with this process's PID, for `tempfile.mkdtemp`/`mkstemp`."""
  return f'{prefix}{os.getpid()}_'


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # Another user's process: alive, and not ours to touch.
  return True


def sweep(prefix: str) -> list[str]:
  """Removes files and directories named `owned_name(prefix)...` whose process is gone."""
  removed = []
  pattern = re.compile(re.escape(prefix) + r'(\d+)_')
  root = tempfile.gettempdir()
  for name in os.listdir(root):
    match = pattern.match(name)
    if match is None or _alive(int(match[1])):
      continue
    path = os.path.join(root, name)
    with contextlib.suppress(OSError):
      if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
      else:
        os.remove(path)
      removed.append(path)
  return removed
