"""The plans a hospital approved: records written by its data steward, read by its gate.

`approve` checks a plan (`plan.load_plan`), optionally that this hospital's
shards have the columns it reads, and writes `<directory>/<plan id>.json`
holding the plan's content (so the record is checked the way the plan is), who
approved it and when. `Approvals` loads every record of the directory at start
(a bad record stops the worker, naming its file) and again when the gate meets
a fingerprint it does not know, so a plan approved while the worker runs
takes effect without a restart. Revoking is deleting the record and restarting.
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import threading

from tff_med.data import csv_reader
from tff_med.deployment import npz_view
from tff_med.deployment import plan as plan_lib
from tff_med.errors import ConfigError, ShardError


def check_columns(plan: plan_lib.Plan, data_root: str, hospitals: list[str]) -> None:
  """Raises ShardError if a shard of `hospitals` lacks a column the plan reads."""
  reads = plan.content['summary']['reads']
  if 'image_shape' in reads:  # Image shards: the shape the plan's model takes.
    _check_image_shapes(plan, data_root, hospitals, tuple(reads['image_shape']))
    return
  wanted = [*reads['features'], reads['label']]
  for hospital in hospitals:
    for split in ('train', 'test'):
      path = os.path.join(data_root, hospital, f'{split}.csv')
      columns = csv_reader.read_table(path, hospital).columns
      missing = [c for c in wanted if c not in columns]
      if missing:
        raise ShardError(
          f'lacks columns {missing} that plan {plan.plan_id} reads', hospital=hospital, file=path
        )


def _check_image_shapes(plan, data_root, hospitals, expected) -> None:
  for hospital in hospitals:
    for split in ('train', 'test'):
      shape = npz_view.image_shape(data_root, hospital, split)
      if shape != expected:
        raise ShardError(
          f'images are {shape}, not the {expected} plan {plan.plan_id} reads',
          hospital=hospital,
          file=f'{hospital}/{split}.npz',
        )


def approve(plan_dir: str, directory: str) -> str:
  """Records the plan in `plan_dir` as approved in `directory`; returns the record's path."""
  plan = plan_lib.load_plan(plan_dir)
  os.makedirs(directory, exist_ok=True)
  record = dict(plan.content)
  record['approved_by'] = getpass.getuser()
  record['approved_at'] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
  path = os.path.join(directory, f'{plan.plan_id}.json')
  with open(path, 'w') as f:
    json.dump(record, f, indent=1)
  return path


class Approvals:
  """The fingerprints of every plan approved in `directory`.

  Raises (at construction):
    ConfigError: The directory is missing, or a record in it is unreadable,
      edited or from other versions, naming the file.
  """

  def __init__(self, directory: str):
    if not os.path.isdir(directory):
      raise ConfigError(
        f'approvals directory {directory} does not exist; approve a plan with '
        '`uv run python -m experiments.approve_plan --plan=DIR --approved=' + directory + '`'
      )
    self.directory = directory
    self._lock = threading.Lock()
    self._plans: dict[str, str] = {}  # fingerprint -> plan id
    self._records: dict[str, dict] = {}
    self._hospitals: set[str] = set()  # The consortium, as the approved plans name it.
    self._secure: set[str] = set()  # The hospitals of approved plans with secure aggregation.
    self._load(strict=True)

  def _load(self, strict: bool) -> None:
    for name in sorted(os.listdir(self.directory)):
      path = os.path.join(self.directory, name)
      if not name.endswith('.json') or name in self._records:
        continue
      try:
        record = plan_lib.read_content(path, 'approval')
      except ConfigError:
        if strict:
          raise
        continue  # Logged by the worker at its next start; never admitted.
      self._records[name] = record
      for c in record['computations']:
        self._plans[c['fingerprint']] = record['digest'][:16]
      self._hospitals.update(record['summary']['hospitals'])
      if record['summary']['algorithm']['aggregator'] == 'secure':
        self._secure.update(record['summary']['hospitals'])

  def plan_of(self, fp: str) -> str | None:
    """The id of an approved plan holding `fp` (rereading the directory once if unknown)."""
    with self._lock:
      if fp not in self._plans:
        self._load(strict=False)
      return self._plans.get(fp)

  def hospitals(self) -> set[str]:
    """The consortium's hospitals, as the approved plans name them."""
    with self._lock:
      return set(self._hospitals)

  def secure_hospitals(self) -> set[str]:
    """The hospitals of the approved plans that use secure aggregation (their keys are needed)."""
    with self._lock:
      return set(self._secure)

  def describe(self) -> str:
    """'plan <id> (<study>)' for each approved plan, or 'none'."""
    plans = [
      f'plan {r["digest"][:16]} ({r["summary"]["study"]["name"]})' for r in self._records.values()
    ]
    return ', '.join(plans) or 'none'
