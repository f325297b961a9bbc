"""A run's plan: the computations it will send to the hospitals, and what each one returns.

`export_plan` writes, for a config, a directory a hospital's data steward can
read and approve (`experiments.approve_plan`):

  plan.json         versions, a structured summary, every computation's fingerprint
                    and return type, and a digest over all of it
  summary.md        the same summary, for people
  computations/     each computation as TFF sends it (`<fingerprint>.pb`), for audit

`load_plan` checks a plan directory before anything trusts it: present,
readable, not edited (digest, files, fingerprints) and from this tff_med,
TensorFlow and TFF version (another version compiles other bytes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os

import tensorflow as tf
import tensorflow_federated as tff
from google.protobuf.message import DecodeError
from tensorflow_federated.proto.v0 import computation_pb2

from tff_med.deployment import computations, fingerprint
from tff_med.deployment import summary as summary_lib
from tff_med.errors import ConfigError

PLAN_FILE = 'plan.json'
SUMMARY_FILE = 'summary.md'
COMPUTATIONS_DIR = 'computations'
FORMAT = 'tff_med plan 1'


def versions() -> dict[str, str]:
  """The versions that decide a computation's bytes."""
  return {
    'tff_med': importlib.metadata.version('tff-med'),
    'tensorflow': tf.__version__,
    'tensorflow_federated': tff.__version__,
  }


def digest(content: dict) -> str:
  """SHA-256 over a plan's versions, summary and computations (canonical JSON)."""
  body = {k: content[k] for k in ('format', 'versions', 'summary', 'computations')}
  return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Plan:
  """A checked plan: its content (as in plan.json) and the protos by fingerprint."""

  directory: str
  content: dict
  protos: dict = dataclasses.field(repr=False)

  @property
  def plan_id(self) -> str:
    return self.content['digest'][:16]

  @property
  def fingerprints(self) -> list[str]:
    return sorted({c['fingerprint'] for c in self.content['computations']})


def build_content(config) -> tuple[dict, dict]:
  """(plan.json content, {fingerprint: Computation proto}) for a remote run's config.

  Raises:
    ConfigError: The config cannot run remotely, or its columns are not known.
  """
  workers = computations.validate_deployment(config)
  features = computations.plan_features(config)
  comps = computations.build(config, features, list(workers))
  listed, protos = [], {}
  for name, comp in comps.invoked().items():
    for part, proto, result in computations.worker_parts(comp):
      fp = fingerprint.fingerprint(proto)
      protos[fp] = proto
      listed.append({'name': name, 'part': part, 'fingerprint': fp, 'returns': str(result)})
  model = comps.keras_model()
  content = {
    'format': FORMAT,
    'versions': versions(),
    'summary': summary_lib.summarize(config, list(workers), features, model),
    'computations': listed,
  }
  content['digest'] = digest(content)
  return content, protos


def export_plan(config, out_dir: str) -> Plan:
  """Writes the plan of `config` to `out_dir` (created; an existing plan is replaced)."""
  content, protos = build_content(config)
  os.makedirs(os.path.join(out_dir, COMPUTATIONS_DIR), exist_ok=True)
  for fp, proto in protos.items():
    with open(os.path.join(out_dir, COMPUTATIONS_DIR, f'{fp}.pb'), 'wb') as f:
      f.write(proto.SerializeToString(deterministic=True))
  with open(os.path.join(out_dir, PLAN_FILE), 'w') as f:
    json.dump(content, f, indent=1)
  with open(os.path.join(out_dir, SUMMARY_FILE), 'w') as f:
    f.write(summary_lib.render(content))
  return Plan(out_dir, content, protos)


def check_content(content: dict, where: str) -> None:
  """Raises ConfigError if `content` is not an unedited plan of this environment's versions."""
  if not isinstance(content, dict) or content.get('format') != FORMAT:
    raise ConfigError(f'{where} is not a tff_med plan ({FORMAT!r} expected)')
  try:
    expected = digest(content)
  except KeyError as e:
    raise ConfigError(f'{where} lacks its {e.args[0]!r} entry') from e
  if content.get('digest') != expected:
    raise ConfigError(
      f'{where} was edited after it was exported (its digest does not match its content); '
      'export the plan again'
    )
  ours = versions()
  theirs = content['versions']
  different = [f'{k} {theirs.get(k)} (here {v})' for k, v in ours.items() if theirs.get(k) != v]
  if different:
    raise ConfigError(
      f'{where} was exported with {", ".join(different)}: the computations would not match; '
      'export it again with the versions the hospitals run'
    )


def read_content(path: str, what: str) -> dict:
  """Reads a plan's JSON content (a plan.json, or an approval record) and checks it.

  Raises:
    ConfigError: Unreadable, not JSON, edited or from other versions, naming `what` and the file.
  """
  try:
    with open(path) as f:
      content = json.load(f)
  except OSError as e:
    raise ConfigError(f'{what} {path} cannot be read: {e.strerror}') from e
  except json.JSONDecodeError as e:
    raise ConfigError(f'{what} {path} is not valid JSON: {e}') from e
  check_content(content, f'{what} {path}')
  return content


def load_plan(directory: str) -> Plan:
  """Reads and checks a plan directory.

  Raises:
    ConfigError: Missing, unreadable, edited, or from other versions, naming the file.
  """
  if not os.path.isdir(directory):
    raise ConfigError(f'plan directory {directory} does not exist')
  content = read_content(os.path.join(directory, PLAN_FILE), 'plan')
  protos = {}
  for fp in {c['fingerprint'] for c in content['computations']}:
    file = os.path.join(directory, COMPUTATIONS_DIR, f'{fp}.pb')
    try:
      with open(file, 'rb') as f:
        proto = _parse(f.read())
    except OSError as e:
      raise ConfigError(f'plan {directory}: {file} cannot be read: {e.strerror}') from e
    if proto is None or fingerprint.fingerprint(proto) != fp:
      raise ConfigError(f'plan {directory}: {file} is not the computation the plan lists (edited?)')
    protos[fp] = proto
  try:
    with open(os.path.join(directory, SUMMARY_FILE)) as f:
      shown = f.read()
  except OSError as e:
    raise ConfigError(f'plan {directory}: {SUMMARY_FILE} cannot be read: {e.strerror}') from e
  if shown != summary_lib.render(content):
    raise ConfigError(f'plan {directory}: {SUMMARY_FILE} was edited; export the plan again')
  return Plan(directory, content, protos)


def _parse(data: bytes):
  try:
    return computation_pb2.Computation.FromString(data)
  except DecodeError:
    return None


def differences(approved: dict, ours: dict) -> list[str]:
  """The summary entries in which two plans differ ('model.parameters', ...)."""

  def flat(d, prefix=''):
    out = {}
    for k, v in d.items():
      if isinstance(v, dict):
        out.update(flat(v, f'{prefix}{k}.'))
      else:
        out[f'{prefix}{k}'] = v
    return out

  a, b = flat(approved['summary']), flat(ours['summary'])
  return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def check_against(config, plan_dir: str) -> None:
  """Refuses a run whose computations are not those of the approved plan in `plan_dir`.

  Raises:
    ConfigError: The plan is bad, or the run differs from it (naming what differs).
  """
  approved = load_plan(plan_dir)
  ours, _ = build_content(config)
  if ours['digest'] == approved.content['digest']:
    return
  changed = differences(approved.content, ours)
  what = (
    ', '.join(changed) if changed else 'the computations (same settings: another code version?)'
  )
  raise ConfigError(
    f'this run is not the plan the hospitals approved ({plan_dir}, plan {approved.plan_id}); '
    f'it differs in: {what}. Export a new plan and have each hospital approve it.'
  )
