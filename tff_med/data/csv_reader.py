"""Reads one CSV shard file into named float columns, row by row, with exact errors.

Plain Python and NumPy: this module knows nothing of TensorFlow or TFF. Every
problem is raised as a `ShardError` naming the hospital, file, column and the
1-based data row (the header is row 0) so it can be found in a spreadsheet.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os

import numpy as np

from tff_med.errors import ShardError

# Features train as float32: a larger magnitude would become infinite there, and
# every update of the hospital non-finite.
LARGEST_VALUE = float(np.finfo(np.float32).max)

# Spellings of "no value" found in the wild (UCI uses '?').
MISSING_TOKENS = frozenset({'', 'na', 'nan', 'null', 'none', '?'})
_TRUE = frozenset({'true', 'yes'})
_FALSE = frozenset({'false', 'no'})


@dataclasses.dataclass(frozen=True)
class CsvTable:
  """The parsed contents of one CSV file.

  Attributes:
    path: The file it came from.
    columns: Header names, in file order.
    cells: Raw cell strings, one list per data row.
  """

  path: str
  columns: list[str]
  cells: list[list[str]]

  @property
  def num_rows(self) -> int:
    return len(self.cells)


def read_table(path: str, hospital: str | None) -> CsvTable:
  """Reads `path` and checks its shape (header, field counts, truncation).

  Args:
    path: A CSV file with a header row, in UTF-8.
    hospital: The hospital id, for error messages (None outside a federation).

  Returns:
    The parsed `CsvTable`.

  Raises:
    ShardError: The file is missing, not UTF-8, empty, has duplicate or blank
      column names, or a row whose field count differs from the header (a
      truncated file).
  """
  if not os.path.isfile(path):
    raise ShardError('file does not exist', hospital=hospital, file=path)
  with open(path, 'rb') as f:
    raw = f.read()
  try:
    text = raw.decode('utf-8-sig')
  except UnicodeDecodeError as e:
    line = raw[: e.start].count(b'\n')  # The header is row 0, as in every other message.
    raise ShardError(
      f'is not UTF-8 text: byte 0x{raw[e.start]:02x} in row {line} (save the file as UTF-8)',
      hospital=hospital,
      file=path,
    ) from None
  rows = list(csv.reader(text.splitlines()))
  if not rows:
    raise ShardError('file is empty (no header row)', hospital=hospital, file=path)
  header = [name.strip() for name in rows[0]]
  _check_header(header, hospital, path)
  cells = []
  for number, row in enumerate(rows[1:], start=1):
    if not row:
      continue  # A blank line carries no record.
    if len(row) != len(header):
      truncated = number == len(rows) - 1 and not text.endswith('\n')
      hint = ' (the file looks truncated)' if truncated else ''
      raise ShardError(
        f'has {len(row)} fields but the header has {len(header)}{hint}',
        hospital=hospital,
        file=path,
        row=number,
      )
    cells.append([cell.strip() for cell in row])
  return CsvTable(path=path, columns=header, cells=cells)


def _check_header(header: list[str], hospital: str, path: str) -> None:
  if any(not name for name in header):
    raise ShardError('header has a blank column name', hospital=hospital, file=path)
  duplicates = sorted({name for name in header if header.count(name) > 1})
  if duplicates:
    raise ShardError(f'header repeats column names {duplicates}', hospital=hospital, file=path)


def parse_number(cell: str) -> float | None:
  """Returns the cell as a float, NaN when missing, or None when not a number."""
  lowered = cell.lower()
  if lowered in MISSING_TOKENS:
    return math.nan
  if lowered in _TRUE:
    return 1.0
  if lowered in _FALSE:
    return 0.0
  try:
    return float(cell)
  except ValueError:
    return None


def is_text_column(table: CsvTable, column: str) -> bool:
  """True when no cell of `column` parses as a number (an identifier or note)."""
  index = table.columns.index(column)
  values = [parse_number(row[index]) for row in table.cells]
  present = [v for v in values if v is None or not math.isnan(v)]
  return bool(present) and all(v is None for v in present)


def numeric_column(table: CsvTable, column: str, hospital: str | None) -> np.ndarray:
  """Returns `column` as float64, NaN where missing.

  Raises:
    ShardError: A cell is not a number, is infinite, or is too large for float32.
  """
  index = table.columns.index(column)
  out = np.empty(table.num_rows, dtype=np.float64)
  for number, row in enumerate(table.cells, start=1):
    value = parse_number(row[index])
    if value is None or abs(value) > LARGEST_VALUE:
      if value is None:
        what = 'is not a number'
      elif math.isinf(value):
        what = 'is infinite'
      else:
        what = f'is too large (beyond float32, whose largest value is {LARGEST_VALUE:.3g})'
      raise ShardError(
        f'value {row[index]!r} {what}',
        hospital=hospital,
        file=table.path,
        column=column,
        row=number,
      )
    out[number - 1] = value
  return out
