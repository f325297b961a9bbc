"""A reproducibility manifest for every workdir: what ran, on what, with which data."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys

from tff_med.run import outputs


def sha256(path: str) -> str:
  """Hex sha256 of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def git_commit() -> str:
  """The commit of the tff_med checkout, with '+dirty' if it has local changes."""
  here = os.path.dirname(os.path.abspath(__file__))
  try:
    commit = subprocess.run(
      ['git', 'rev-parse', 'HEAD'], cwd=here, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()
    dirty = subprocess.run(
      ['git', 'status', '--porcelain', '--untracked-files=no'],
      cwd=here,
      capture_output=True,
      text=True,
      timeout=10,
    ).stdout.strip()
    return commit + ('+dirty' if dirty else '')
  except (OSError, subprocess.SubprocessError):
    return 'unknown (not a git checkout)'


def versions() -> dict:
  """Versions of Python and the libraries a result depends on."""
  import numpy as np
  import tensorflow as tf
  import tensorflow_federated as tff

  return {
    'python': platform.python_version(),
    'tensorflow': tf.__version__,
    'tensorflow_federated': tff.__version__,
    'numpy': np.__version__,
  }


def write_manifest(workdir: str, *, config: dict, seeds: list[int], shard_files: list[str]) -> str:
  """Writes `manifest.json` into `workdir`; returns its path."""
  os.makedirs(workdir, exist_ok=True)
  manifest = {
    'command_line': sys.argv,
    'git_commit': git_commit(),
    'versions': versions(),
    'seeds': seeds,
    'config': config,
    'shards': {path: sha256(path) for path in sorted(shard_files)},
  }
  path = os.path.join(workdir, outputs.MANIFEST_JSON)
  with open(path, 'w') as f:
    json.dump(manifest, f, indent=2, sort_keys=True, default=str)
  return path


def add_to_manifest(workdir: str, **entries) -> None:
  """Adds `entries` to the `manifest.json` of `workdir` (what a run learned as it went)."""
  path = os.path.join(workdir, outputs.MANIFEST_JSON)
  with open(path) as f:
    manifest = json.load(f)
  manifest.update(entries)
  with open(path, 'w') as f:
    json.dump(manifest, f, indent=2, sort_keys=True, default=str)
