"""The shard contract: `<root>/<hospital_id>/{train,test}.csv` (or `.npz`).

Each hospital directory under the root is one TFF client. A CSV shard has a
header row, one label column, and features: every other numeric column, or the
columns the config lists. Every check here runs before training starts and
raises a `ShardError` that names the hospital, file, column and row; nothing is
dropped without saying so (see `MissingPolicy`). Plain NumPy, no TFF.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence

import numpy as np
from absl import logging

from tff_med.data import csv_reader, layout, missing_values, targets
from tff_med.errors import ConfigError, ShardError

SPLITS = ('train', 'test')
MISSING_POLICIES = missing_values.POLICIES


@dataclasses.dataclass
class HospitalShard:
  """One hospital's data, already validated. Arrays are float32 / int32."""

  hospital: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  files: list[str]
  notes: list[str] = dataclasses.field(default_factory=list)
  # Fraction of training rows missing each feature, before the missing policy.
  missing_rate: np.ndarray | None = None

  def __post_init__(self):
    if self.missing_rate is None:
      self.missing_rate = np.zeros(int(np.prod(self.x_train.shape[1:])))


@dataclasses.dataclass
class FederatedShards:
  """All hospitals of a study, with the schema they share."""

  shards: list[HospitalShard]
  feature_names: list[str]
  label: str  # The event column of a survival study.
  num_classes: int  # targets.SURVIVAL_OUTPUTS for a survival study.
  time: str | None = None  # The time column of a survival study; y is then [rows, 2] (time, event).

  @property
  def survival(self) -> bool:
    return self.time is not None

  @property
  def hospitals(self) -> list[str]:
    return [s.hospital for s in self.shards]

  def __getitem__(self, hospital: str) -> HospitalShard:
    for shard in self.shards:
      if shard.hospital == hospital:
        return shard
    raise KeyError(f'no hospital {hospital!r}; hospitals are {self.hospitals}')


def load_csv_shards(
  root: str,
  *,
  label: str | None = None,
  features: Sequence[str] | None = None,
  num_classes: int = 2,
  missing: str = 'error',
  event: str | None = None,
  time: str | None = None,
) -> FederatedShards:
  """Reads and validates every hospital's CSV shards under `root`.

  Args:
    root: Directory with one sub-directory per hospital.
    label: Name of the label column (integer classes 0..num_classes-1); None
      for a survival study.
    features: Feature columns; by default every numeric column but the targets.
    num_classes: Number of label classes (2 for binary).
    missing: 'error' (default), 'drop_rows' or 'impute_mean' (the hospital's
      own training mean, so no statistic crosses hospitals).
    event: For a survival study, the event column (1 observed, 0 censored).
    time: For a survival study, the time column (non-negative).

  Returns:
    The validated `FederatedShards`.

  Raises:
    ShardError: A shard breaks the contract (see the module docstring).
    ConfigError: `missing` or `num_classes` is not valid, or the label is a feature.
  """
  if missing not in MISSING_POLICIES:
    raise ConfigError(f'Unknown missing-value policy {missing!r}; valid: {MISSING_POLICIES}')
  if event is not None or time is not None:
    target = targets.Survival(event, time)
  else:
    if num_classes < 2:
      raise ConfigError(f'num_classes must be >= 2, got {num_classes}')
    target = targets.ClassLabel(label, num_classes)
  tables = _read_tables(root)
  first = next(iter(tables.values()))['train']
  for column in target.columns:
    if column not in first.columns:
      role = 'label' if column == label else ('time' if column == time else 'event')
      raise ShardError(
        f'{role} column {column!r} not found; columns are {first.columns}',
        hospital=next(iter(tables)),
        file=first.path,
      )
  names = _feature_names(tables, target.columns, features)
  layout.warn_if_one_hospital(list(tables), root)
  shards = [_build_shard(h, t, names, target, missing) for h, t in tables.items()]
  return FederatedShards(shards, names, target.columns[-1], target.num_classes, time)


def _read_tables(root: str) -> dict[str, dict[str, csv_reader.CsvTable]]:
  """hospital -> split -> its CSV table, with the columns checked to agree."""
  tables = {
    h: {s: csv_reader.read_table(layout.shard_file(root, h, f'{s}.csv'), h) for s in SPLITS}
    for h in layout.discover_hospitals(root)
  }
  check_same_columns([(h, t.path, t.columns) for h in tables for t in tables[h].values()])
  return tables


def check_csv_shards(root: str) -> list[str]:
  """Checks every hospital's CSV shards before any study names its label; returns the hospitals.

  What a hospital's worker runs at start: the files, their shape and columns,
  and every numeric cell (a finite number, or missing). The label, its classes
  and the missing-value policy are the study's choice, in the plan the hospital
  approves, and are checked when the coordinator asks (`deployment.shard_format`).

  Raises:
    ShardError: As `load_csv_shards`, naming the hospital, file, column and row.
  """
  tables = _read_tables(root)
  for column in _feature_names(tables, target_columns=(), features=None):
    for hospital, splits in tables.items():
      for table in splits.values():
        csv_reader.numeric_column(table, column, hospital)  # Missing cells are the study's call.
  for hospital, splits in tables.items():
    if not splits['train'].num_rows:
      raise ShardError('training shard has no rows', hospital=hospital, file=splits['train'].path)
  return list(tables)


def check_same_columns(files: list[tuple[str, str, Sequence[str]]]) -> None:
  """Every shard file has the columns most of them have; one that differs is named.

  Args:
    files: (hospital, file, header columns) of every shard file.

  Raises:
    ShardError: A file's columns differ from the majority's, naming its
      hospital and file, the columns it lacks and the ones it adds.
  """
  column_sets = collections.Counter(frozenset(columns) for _, _, columns in files)
  expected, agreeing = column_sets.most_common(1)[0]
  for hospital, path, columns in files:
    if set(columns) == expected:
      continue
    problem = (
      f'columns differ from those of the other {agreeing} shard files: missing '
      f'{sorted(expected - set(columns))}, extra {sorted(set(columns) - expected)}'
    )
    if len(columns) == 1 and any(sep in columns[0] for sep in ';\t|'):
      problem += (
        ' (the header is one column: is the file separated by something other than commas?)'
      )
    raise ShardError(problem, hospital=hospital, file=path)


def _feature_names(tables, target_columns, features) -> list[str]:
  first_hospital = next(iter(tables))
  first = tables[first_hospital]['train']
  if features:
    listed = [c for c in target_columns if c in features]
    if listed:
      role = (
        'label' if len(target_columns) == 1 else ('time', 'event')[target_columns.index(listed[0])]
      )
      raise ConfigError(
        f'data.features lists the {role} column {listed[0]!r}: the model would be trained on '
        'its answer'
      )
    unknown = [f for f in features if f not in first.columns]
    if unknown:
      raise ShardError(
        f'configured feature columns {unknown} not found; columns are {first.columns}',
        hospital=first_hospital,
        file=first.path,
      )
    return list(features)
  candidates = [c for c in first.columns if c not in target_columns]
  text = [
    c
    for c in candidates
    if all(
      csv_reader.is_text_column(t[s], c) for t in tables.values() for s in SPLITS if t[s].num_rows
    )
  ]
  if text:
    logging.info('Columns %s hold no numbers at any hospital; not used as features.', text)
  names = [c for c in candidates if c not in text]
  if not names:
    raise ShardError('no numeric feature column', hospital=first_hospital, file=first.path)
  return names


def _build_shard(hospital, tables, names, target, missing) -> HospitalShard:
  notes = []
  arrays = {}
  for split in SPLITS:
    table = tables[split]
    x = np.stack([csv_reader.numeric_column(table, c, hospital) for c in names], axis=1)
    y = targets.read(target, table, hospital)
    if split == 'train':
      missing_rate = np.isnan(x).mean(axis=0) if len(x) else np.zeros(len(names))
    x, y, note = missing_values.apply_policy(x, y, table, names, target.columns, hospital, missing)
    if note:
      notes.append(note)
    if split == 'train' and not len(y):
      raise ShardError('training shard has no rows', hospital=hospital, file=table.path)
    arrays[split] = (x, target.check(y, table.path, hospital, split))
  if missing == 'impute_mean':
    arrays, note = missing_values.impute_with_train_mean(arrays)
    if note:
      notes.append(f'{note} at {hospital}')
  for note in notes:
    logging.warning('%s', note)
  (x_train, y_train), (x_test, y_test) = arrays['train'], arrays['test']
  return HospitalShard(
    hospital=hospital,
    x_train=x_train.astype(np.float32),
    y_train=y_train,
    x_test=x_test.astype(np.float32),
    y_test=y_test,
    files=[tables[s].path for s in SPLITS],
    notes=notes,
    missing_rate=missing_rate,
  )
