"""Errors that tell a researcher exactly which hospital, file, column and row is wrong."""

from __future__ import annotations


class ShardError(ValueError):
  """A per-hospital shard breaks the shard contract.

  The message always starts with where the problem is (hospital, file, column,
  row, whichever apply) so that a data manager at that hospital can fix it
  without reading code.
  """

  def __init__(
    self,
    problem: str,
    *,
    hospital: str | None = None,
    file: str | None = None,
    column: str | None = None,
    row: int | None = None,
  ):
    self.problem = problem
    self.hospital = hospital
    self.file = file
    self.column = column
    self.row = row
    where = [
      f'{label} {value!r}' if label != 'row' else f'row {value}'
      for label, value in (
        ('hospital', hospital),
        ('file', file),
        ('column', column),
        ('row', row),
      )
      if value is not None
    ]
    prefix = ', '.join(where)
    super().__init__(f'{prefix}: {problem}' if prefix else problem)


class ConfigError(ValueError):
  """A config field holds a value tff_med cannot use."""


class NonFiniteUpdateError(RuntimeError):
  """A round produced a non-finite client update or aggregate and the config says stop."""


def unknown_name_error(kind: str, name: str, valid) -> ConfigError:
  """Returns an error naming the bad `name` of `kind` and the valid choices."""
  return ConfigError(f'Unknown {kind} {name!r}; valid {kind}s are: {", ".join(sorted(valid))}.')
