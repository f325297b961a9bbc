"""Who takes part in each round, and what a hospital that drops out does to the run.

TFF has no notion of a client that goes away (its remote executor retries a
dead worker forever); NVIDIA FLARE (`min_clients`), Flower
(`min_available_nodes`, `accept_failures`) and OpenFL continue without it. The
rule here, the same for simulated and real dropouts:

- a round is all or nothing: when a hospital fails during a round, the round is
  redone from the same global model without it, provided at least
  `deployment.min_hospitals` remain; otherwise the run stops (the checkpoint of
  the last round is intact, and rerunning resumes);
- a dropped hospital is probed at the start of each later round and rejoins
  with the current global model when it answers;
- a hospital out of a round is also out of that round's evaluation: its
  metrics are missing (NaN), never stale, and so is the union's.
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
from collections.abc import Callable

import numpy as np
from absl import logging

from tff_med.errors import ConfigError, DeploymentError, HospitalsUnavailable
from tff_med.run import dropout
from tff_med.run.outputs import HOSPITALS_IN_ROUND, MISSING_PREFIX, ROUND_SECONDS

_NOT_PLANNED, _MISSING, _TOOK_PART = -1, 0, 1


def _no_route(hospitals):
  return contextlib.nullcontext()


class Attendance:
  """The hospitals of each round, the dropout rule, and the record of who took part.

  Args:
    hospitals: Every hospital of the study.
    min_hospitals: The fewest hospitals a round may have; None: all planned ones.
    route: hospitals -> context running the enclosed TFF calls on their workers
      (raising `HospitalsUnavailable` for a worker that fails).
    available: hospitals -> those whose workers answer now (a remote run's probe).
    absent: round -> hospitals absent in it (simulated dropouts).
    deadline: The round deadline in seconds (remote runs), to warn before rounds reach it.
  """

  def __init__(
    self,
    hospitals: list[str],
    *,
    min_hospitals: int | None = None,
    route: Callable | None = None,
    available: Callable[[list[str]], list[str]] | None = None,
    absent: Callable[[int], set[str]] | None = None,
    deadline: float | None = None,
  ):
    self.hospitals = list(hospitals)
    self.min_hospitals = min_hospitals
    self.can_drop = available is not None or absent is not None
    self._route = route or _no_route
    self._available = available
    self._absent = absent
    self._deadline = deadline
    self._warned = False
    self._out: dict[str, str] = {}  # Hospital -> why it is out of the current round.
    self.planned: dict[int, list[str]] = {}
    self.taken: dict[int, list[str]] = {}

  def _begin(self, round_num: int, planned: list[str]) -> list[str]:
    """The planned hospitals that can take part in `round_num` (probing dropped ones)."""
    present = self._available(self.hospitals) if self._available else self.hospitals
    out = {h: self._out.get(h, 'did not answer the probe') for h in self.hospitals}
    for h in present:
      out.pop(h)
    for h in self._absent(round_num) if self._absent else ():
      out[h] = f'absent ({dropout.SETTING})'
    self._out = out
    return [h for h in planned if h not in out]

  @contextlib.contextmanager
  def route(self, hospitals: list[str]):
    """The route, refusing hospitals out of this round and noting those that fail in it."""
    out = [h for h in hospitals if h in self._out]
    if out:
      raise HospitalsUnavailable(out, '; '.join(dict.fromkeys(self._out[h] for h in out)))
    try:
      with self._route(hospitals):
        yield
    except HospitalsUnavailable as e:
      self._out.update(dict.fromkeys(e.hospitals, e.reason))
      raise

  def train(self, round_num: int, planned: list[str], step: Callable[[list[str]], object]):
    """(step(hospitals), hospitals): the round, redone without any hospital that fails in it.

    Raises:
      DeploymentError: Fewer than `min_hospitals` planned hospitals can take part.
    """
    hospitals = self._begin(round_num, planned)
    while True:
      self._check_enough(round_num, planned, hospitals)
      began = time.monotonic()
      try:
        with self.route(hospitals):
          result = step(hospitals)
      except HospitalsUnavailable as e:
        logging.warning('Round %d: %s; redoing the round without them.', round_num, e)
        hospitals = [h for h in hospitals if h not in e.hospitals]
        continue
      self._record(round_num, planned, hospitals)
      self.check_deadline(round_num, time.monotonic() - began)
      return result, hospitals

  def check_deadline(self, round_num: int, seconds: float) -> None:
    """Warns (once) when a round took more than half the round deadline."""
    if self._deadline is None or self._warned or seconds <= self._deadline / 2:
      return
    self._warned = True
    logging.warning(
      'Round %d took %.1f s, more than half the round deadline (deployment.call_timeout = '
      '%g s): a hospital slower than the deadline is dropped from its round; raise the '
      'deadline if rounds are this slow.',
      round_num,
      seconds,
      self._deadline,
    )

  def check_past_rounds(self, metrics_csv: str) -> None:
    """On a rerun, `check_deadline` for the slowest round in `metrics_csv` (if it exists)."""
    if self._deadline is None or not os.path.exists(metrics_csv):
      return
    with open(metrics_csv) as f:
      times = {
        int(row['key']): float(row[ROUND_SECONDS])
        for row in csv.DictReader(f)
        if row.get(ROUND_SECONDS)
      }
    if times:
      slowest = max(times, key=times.get)
      self.check_deadline(slowest, times[slowest])

  def _needed(self, planned: list[str]) -> int:
    return min(self.min_hospitals or len(planned), len(planned))

  def _check_enough(self, round_num: int, planned: list[str], hospitals: list[str]) -> None:
    if len(hospitals) >= max(self._needed(planned), 1):
      return
    missing = '; '.join(f'{h}: {self._out[h]}' for h in planned if h in self._out)
    setting = (
      f'deployment.min_hospitals is {self.min_hospitals}'
      if self.min_hospitals
      else 'every hospital must take part (deployment.min_hospitals is not set)'
    )
    raise DeploymentError(
      f'round {round_num}: only {len(hospitals)} of {len(planned)} hospitals can take part '
      f'({missing}), and {setting}. The checkpoint of the last round is intact: restart the '
      'missing workers and rerun the same command to resume, or set deployment.min_hospitals '
      'to continue without them.'
    )

  def _record(self, round_num: int, planned: list[str], hospitals: list[str]) -> None:
    self.planned[round_num], self.taken[round_num] = list(planned), list(hospitals)
    missing = [h for h in planned if h not in hospitals]
    if missing:
      logging.warning(
        'Round %d: %d of %d hospitals took part; missing: %s.',
        round_num,
        len(hospitals),
        len(planned),
        '; '.join(f'{h} ({self._out.get(h, "failed")})' for h in missing),
      )

  def round_metrics(self, round_num: int) -> dict[str, float]:
    """How many hospitals took part in `round_num`, and (if any could drop) which were missing."""
    metrics = {HOSPITALS_IN_ROUND: len(self.taken[round_num])}
    if self.can_drop:
      for h in self.hospitals:
        metrics[MISSING_PREFIX + h] = int(self.missed(h, round_num))
    return metrics

  def missed(self, hospital: str, round_num: int) -> bool:
    """True if `hospital` was planned in `round_num` but did not take part."""
    return hospital in self.planned[round_num] and hospital not in self.taken[round_num]

  def out_now(self) -> list[str]:
    """The hospitals out of the current round (their evaluation is missing)."""
    return [h for h in self.hospitals if h in self._out]

  def to_array(self) -> np.ndarray:
    """The record as int8 [round - 1, hospital]: 1 took part, 0 missing, -1 not planned."""
    rows = [
      [
        _TOOK_PART if h in self.taken[r] else _MISSING if h in self.planned[r] else _NOT_PLANNED
        for h in self.hospitals
      ]
      for r in sorted(self.taken)
    ]
    return np.array(rows, np.int8).reshape(len(rows), len(self.hospitals))

  def restore(self, record: np.ndarray) -> None:
    """Takes back the record of rounds 1..len(record) (`to_array` of a checkpoint)."""
    for index, row in enumerate(np.asarray(record)):
      r = index + 1
      self.planned[r] = [h for h, v in zip(self.hospitals, row, strict=True) if v != _NOT_PLANNED]
      self.taken[r] = [h for h, v in zip(self.hospitals, row, strict=True) if v == _TOOK_PART]

  def summary(self) -> dict:
    """What results.json says: each hospital's rounds taken part in and missed, and who
    was out of the last evaluation."""
    return {
      'min_hospitals': self.min_hospitals or 'all',
      'absent_at_final_evaluation': self.out_now(),
      'rounds_taken_part': {
        h: [r for r in sorted(self.taken) if h in self.taken[r]] for h in self.hospitals
      },
      'rounds_missed': {
        h: [r for r in sorted(self.taken) if self.missed(h, r)] for h in self.hospitals
      },
    }


def check_settings(config, *, remote: bool) -> None:
  """Checks `deployment.min_hospitals` and `simulate_dropout` before any work.

  Raises:
    ConfigError: min_hospitals below 1, set on a simulation without faults to
      inject, or above the hospitals per round; simulated dropouts on a remote run.
  """
  d = config.get('deployment')
  if d is None:
    return
  spec, least = d.get('simulate_dropout', ''), d.get('min_hospitals')
  if remote and spec:
    raise ConfigError(
      f'{dropout.SETTING} is for simulations; in a remote run the dropouts are real '
      '(deployment.min_hospitals decides what they do)'
    )
  if least is None:
    return
  if least < 1:
    raise ConfigError(f'deployment.min_hospitals must be >= 1, got {least}')
  if not remote and not spec:
    raise ConfigError(
      f'deployment.min_hospitals is set on a simulation without faults to inject; set '
      f'{dropout.SETTING} (e.g. hungary@2-3) or deployment.workers'
    )
  per_round = config.algorithm.clients_per_round
  if per_round and least > per_round:
    raise ConfigError(
      f'deployment.min_hospitals={least} is more than algorithm.clients_per_round={per_round}'
    )


def from_config(config, hospitals: list[str], *, route=None, available=None) -> Attendance:
  """The run's `Attendance`, from its `deployment` block (checked by `check_settings`).

  Raises:
    ConfigError: min_hospitals above the number of hospitals; a bad simulate_dropout.
  """
  d = config.get('deployment') or {}
  least = d.get('min_hospitals')
  if least is not None and least > len(hospitals):
    raise ConfigError(
      f'deployment.min_hospitals={least} is more than the {len(hospitals)} hospitals of this '
      f'study ({", ".join(hospitals)})'
    )
  absent = dropout.schedule(d.get('simulate_dropout', ''), hospitals, config.seed)
  deadline = d.get('call_timeout') if available is not None else None
  return Attendance(
    hospitals,
    min_hospitals=least,
    route=route,
    available=available,
    absent=absent,
    deadline=deadline,
  )
