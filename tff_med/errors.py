"""Errors that tell a researcher exactly which hospital, file, column and row is wrong."""

from __future__ import annotations


class UserError(Exception):
  """An error whose message alone tells the user what to fix.

  The binaries print such an error as one line (its class and message) and exit
  non-zero; the traceback is only shown with `--verbosity`.
  """


class ShardError(UserError, ValueError):
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


class ConfigError(UserError, ValueError):
  """A config field holds a value tff_med cannot use."""


class NonFiniteUpdateError(UserError, RuntimeError):
  """A round produced a non-finite client update or aggregate and the config says stop."""


class WorkerError(UserError, RuntimeError):
  """A TFF worker could not be started or stopped."""


class DeploymentError(UserError, RuntimeError):
  """A hospital's worker cannot be reached, is not ready, or lacks its shard."""


class HospitalsUnavailable(DeploymentError):
  """Hospitals that cannot take part in a call: their worker went away, or they are out.

  Attributes:
    hospitals: The hospitals concerned.
    reason: Why, in words (e.g. 'no answer within 10 s').
  """

  def __init__(self, hospitals: list[str], reason: str):
    self.hospitals = list(hospitals)
    self.reason = reason
    super().__init__(f'{", ".join(self.hospitals)}: {reason}')


def unknown_name_error(kind: str, name: str, valid) -> ConfigError:
  """Returns an error naming the bad `name` of `kind` and the valid choices."""
  return ConfigError(f'Unknown {kind} {name!r}; valid {kind}s are: {", ".join(sorted(valid))}.')
