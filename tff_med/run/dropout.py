"""Simulated dropouts (`deployment.simulate_dropout`): which hospitals are absent in which round.

A spec is a comma-separated list of `hospital@rounds`, where rounds is one round
('3'), a range ('2-4') or a probability per round ('p0.25', drawn from the run's
seed, so a rerun drops the same hospitals in the same rounds). A hospital may
appear in several entries: 'hungary@2-3,hungary@7,va_long_beach@p0.1'.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tff_med.errors import ConfigError

SETTING = 'deployment.simulate_dropout'


def _entry_error(entry: str, problem: str) -> ConfigError:
  return ConfigError(
    f'{SETTING} entry {entry!r}: {problem}; write hospital@ROUND, hospital@FIRST-LAST or '
    'hospital@pPROBABILITY, separated by commas'
  )


def _rounds(entry: str, text: str) -> tuple[int, int] | float:
  """(first, last) rounds, or a probability per round."""
  if text.startswith('p'):
    try:
      p = float(text[1:])
    except ValueError:
      raise _entry_error(entry, f'{text[1:]!r} is not a probability') from None
    if not (math.isfinite(p) and 0 <= p <= 1):
      raise _entry_error(entry, f'the probability must be in [0, 1], got {p}')
    return p
  first, _, last = text.partition('-')
  try:
    span = (int(first), int(last or first))
  except ValueError:
    raise _entry_error(entry, f'{text!r} is not a round or a range of rounds') from None
  if not 1 <= span[0] <= span[1]:
    raise _entry_error(entry, f'rounds start at 1 and a range must not run backwards: {text!r}')
  return span


def schedule(spec: str, hospitals: list[str], seed: int) -> Callable[[int], set[str]] | None:
  """round -> the hospitals absent in it, from `spec`; None for an empty spec.

  Raises:
    ConfigError: A malformed entry, or a hospital that is not in the study.
  """
  if not spec.strip():
    return None
  rules: list[tuple[str, tuple[int, int] | float]] = []
  for entry in (e.strip() for e in spec.split(',')):
    hospital, at, rounds = entry.partition('@')
    if not at or not hospital or not rounds:
      raise _entry_error(entry, 'it has no hospital@rounds')
    if hospital not in hospitals:
      raise ConfigError(
        f'{SETTING} names {hospital!r}, which is not a hospital of this study '
        f'({", ".join(hospitals)})'
      )
    rules.append((hospital, _rounds(entry, rounds)))

  def absent(round_num: int) -> set[str]:
    out = set()
    for hospital, rounds in rules:
      if isinstance(rounds, float):
        draw = np.random.default_rng([seed, hospitals.index(hospital), round_num]).random()
        if draw < rounds:
          out.add(hospital)
      elif rounds[0] <= round_num <= rounds[1]:
        out.add(hospital)
    return out

  return absent
