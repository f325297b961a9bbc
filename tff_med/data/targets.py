"""What a shard's rows are trained to predict: a class label, or a survival time and event.

A target reads its columns from a CSV table (NaN where missing, so the shard's
missing-value policy sees them), then checks the values and returns the array
the model trains on. Errors name the hospital, file, column and row. Plain NumPy.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import logging

from tff_med.data import csv_reader
from tff_med.errors import ShardError

# A survival model has one output, a risk score: `num_classes` says so to the
# model, loss and metric builders.
SURVIVAL_OUTPUTS = 1


def warn_if_one_class(y_train: np.ndarray, hospital: str, path: str) -> None:
  """Logs a warning when a hospital's training labels hold a single class."""
  classes = np.unique(y_train)
  if len(classes) == 1:
    logging.warning(
      'Hospital %s: every training label in %s is %d; its updates can only push the model '
      'towards that class.',
      hospital,
      path,
      int(classes[0]),
    )


@dataclasses.dataclass(frozen=True)
class ClassLabel:
  """An integer class label 0..num_classes-1 (float32 0/1 for two classes)."""

  column: str
  num_classes: int

  @property
  def columns(self) -> tuple[str, ...]:
    return (self.column,)

  def check(self, y: np.ndarray, path: str, hospital: str, split: str) -> np.ndarray:
    """[rows, 1] float64 -> int32 [rows]; a value outside the classes is a ShardError."""
    y = y[:, 0]
    bad = (y != np.round(y)) | (y < 0) | (y >= self.num_classes)
    if bad.any():
      row = int(np.argmax(bad))
      raise ShardError(
        f'label {y[row]:g} is outside the declared classes {list(range(self.num_classes))}',
        hospital=hospital,
        file=path,
        column=self.column,
        row=row + 1,
      )
    if split == 'train':
      warn_if_one_class(y, hospital, path)
    return y.astype(np.int32)


@dataclasses.dataclass(frozen=True)
class Survival:
  """Time to an event (non-negative) and whether it was observed (1) or censored (0)."""

  event: str
  time: str
  num_classes: int = SURVIVAL_OUTPUTS

  @property
  def columns(self) -> tuple[str, ...]:
    return (self.time, self.event)

  def check(self, y: np.ndarray, path: str, hospital: str, split: str) -> np.ndarray:
    """[rows, 2] (time, event) float64 -> float32 [rows, 2], checked.

    Raises:
      ShardError: A negative time, an event outside {0, 1}, or a training shard
        without any observed event (its Cox partial likelihood is empty).
    """
    time, event = y[:, 0], y[:, 1]
    for column, bad, problem in (
      (self.time, time < 0, 'time is negative'),
      (self.event, (event != 0) & (event != 1), 'event must be 0 (censored) or 1 (observed)'),
    ):
      if bad.any():
        row = int(np.argmax(bad))
        value = y[row, self.columns.index(column)]
        raise ShardError(
          f'{problem}, got {value:g}', hospital=hospital, file=path, column=column, row=row + 1
        )
    if split == 'train' and len(event) and not event.any():
      raise ShardError(
        'the training shard has no observed event (every patient is censored): the Cox '
        'partial likelihood has nothing to learn from here',
        hospital=hospital,
        file=path,
        column=self.event,
      )
    return y.astype(np.float32)


def read(target, table: csv_reader.CsvTable, hospital: str) -> np.ndarray:
  """The target's columns of `table` as float64 [rows, columns], NaN where missing."""
  return np.stack([csv_reader.numeric_column(table, c, hospital) for c in target.columns], axis=1)
