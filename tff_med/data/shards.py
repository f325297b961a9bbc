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
import os
from collections.abc import Sequence

import numpy as np
from absl import logging

from tff_med.data import csv_reader, targets
from tff_med.errors import ConfigError, ShardError

SPLITS = ('train', 'test')
MISSING_POLICIES = ('error', 'drop_rows', 'impute_mean')


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


def discover_hospitals(root: str) -> list[str]:
  """Returns the sorted hospital ids (sub-directories) under `root`.

  Raises:
    ShardError: `root` is missing, holds no hospital directory, or a hospital
      directory is a link to a place outside `root`.
  """
  if not root or not os.path.isdir(root):
    raise ShardError(f'shard root {root!r} does not exist or is not a directory')
  hospitals = sorted(
    d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith('.')
  )
  if not hospitals:
    raise ShardError(
      f'shard root {root!r} is empty: expected one directory per hospital, '
      'each with train.csv and test.csv'
    )
  for hospital in hospitals:
    _check_inside_root(root, os.path.join(root, hospital), hospital)
  return hospitals


def warn_if_one_hospital(hospitals: list[str], root: str) -> None:
  """A study over a single hospital is local training: say so (a hospital's worker may serve one)."""
  if len(hospitals) == 1:
    logging.warning(
      'Only one hospital (%s) under %s: this run is local training, not a federation.',
      hospitals[0],
      root,
    )


def shard_file(root: str, hospital: str, name: str) -> str:
  """The path of a hospital's shard file, refused if it links outside `root`.

  The manifest records the paths read; a link leading elsewhere would make it
  name a file that was not the one read.

  Raises:
    ShardError: The file (or its directory) resolves to a place outside `root`.
  """
  path = os.path.join(root, hospital, name)
  _check_inside_root(root, path, hospital)
  return path


def _check_inside_root(root: str, path: str, hospital: str) -> None:
  real_root, real = os.path.realpath(root), os.path.realpath(path)
  if os.path.commonpath([real_root, real]) != real_root:
    raise ShardError(
      f'is a link to {real}, outside the shard root {real_root}; copy the data into the root',
      hospital=hospital,
      file=path,
    )


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
  warn_if_one_hospital(list(tables), root)
  shards = [_build_shard(h, t, names, target, missing) for h, t in tables.items()]
  return FederatedShards(shards, names, target.columns[-1], target.num_classes, time)


def _read_tables(root: str) -> dict[str, dict[str, csv_reader.CsvTable]]:
  """hospital -> split -> its CSV table, with the columns checked to agree."""
  tables = {
    h: {s: csv_reader.read_table(shard_file(root, h, f'{s}.csv'), h) for s in SPLITS}
    for h in discover_hospitals(root)
  }
  check_same_columns([(h, t.path, t.columns) for h in tables for t in tables[h].values()])
  return tables


def check_csv_shards(root: str) -> list[str]:
  """Checks every hospital's CSV shards before any study names its label; returns the hospitals.

  What a hospital's worker runs at start: the files, their shape and columns,
  and every numeric cell (complete and finite). The label and its classes are
  the coordinator's choice and are checked when it asks (`remote_data`).

  Raises:
    ShardError: As `load_csv_shards`, naming the hospital, file, column and row.
  """
  tables = _read_tables(root)
  for column in _feature_names(tables, target_columns=(), features=None):
    for hospital, splits in tables.items():
      for table in splits.values():
        values = csv_reader.numeric_column(table, column, hospital)
        if np.isnan(values).any():
          raise ShardError(
            'value is missing (a hospital worker serves complete shards)',
            hospital=hospital,
            file=table.path,
            column=column,
            row=int(np.argmax(np.isnan(values))) + 1,
          )
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
    x, y, note = _apply_missing_policy(x, y, table, names, target.columns, hospital, missing)
    if note:
      notes.append(note)
    if split == 'train' and not len(y):
      raise ShardError('training shard has no rows', hospital=hospital, file=table.path)
    arrays[split] = (x, target.check(y, table.path, hospital, split))
  if missing == 'impute_mean':
    arrays, note = _impute_with_train_mean(arrays, names)
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


def _apply_missing_policy(x, y, table, names, target_columns, hospital, missing):
  feature_gaps = np.isnan(x)
  label_gaps = np.isnan(y).any(axis=1)
  if not feature_gaps.any() and not label_gaps.any():
    return x, y, None
  if missing == 'drop_rows':
    keep = ~(feature_gaps.any(axis=1) | label_gaps)
    note = f'drop_rows: dropped {int((~keep).sum())} of {len(y)} rows of {table.path} with missing values'
    return x[keep], y[keep], note
  if missing == 'error' or label_gaps.any():
    if label_gaps.any():
      row = int(np.argmax(label_gaps))
      column = target_columns[int(np.argmax(np.isnan(y[row])))]
    else:
      row, col = np.argwhere(feature_gaps)[0]
      column = names[col]
    hint = (
      "set data.missing='drop_rows' or 'impute_mean'"
      if missing == 'error'
      else 'a missing target cannot be imputed'
    )
    raise ShardError(
      f'value is missing ({hint})',
      hospital=hospital,
      file=table.path,
      column=column,
      row=int(row) + 1,
    )
  return x, y, None  # impute_mean fills in later, with the train means.


def _impute_with_train_mean(arrays, names):
  x_train = arrays['train'][0]
  means = np.nanmean(np.where(np.isnan(x_train).all(axis=0), 0.0, x_train), axis=0)
  touched = 0
  for split in SPLITS:
    x, y = arrays[split]
    gaps = np.isnan(x)
    touched += int(gaps.any(axis=1).sum())
    arrays[split] = (np.where(gaps, means, x), y)
  note = f'impute_mean: filled missing values in {touched} rows' if touched else None
  return arrays, note
