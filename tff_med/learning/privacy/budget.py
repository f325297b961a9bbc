"""A run's differential-privacy plan: what is protected, with which noise, at what epsilon.

Two levels, chosen by `config.privacy.level`:

* 'patient': DP-SGD inside every hospital (`dp_sgd`); one training record is the
  protected unit and each hospital has its own epsilon, from its own sampling
  rate and steps. With a `target_epsilon` each hospital's noise is calibrated so
  that it spends exactly that by the last round.
* 'hospital': TFF's `dp_aggregator` (Gaussian noise, adaptive clipping) over
  the hospitals' updates; a whole hospital is the protected unit.

The plan is checked before any training and reports epsilon spent so far as
per-round metrics ('privacy/epsilon/<hospital>', 'privacy/epsilon_max') and in
the run's results.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable

from absl import logging

from tff_med.errors import ConfigError, unknown_name_error
from tff_med.learning.privacy import accounting

LEVELS = ('none', 'patient', 'hospital')
HOSPITAL_KEY = 'all hospitals'
EPSILON_PREFIX = 'privacy/epsilon/'
EPSILON_MAX = 'privacy/epsilon_max'
SAMPLING_NOTE = (
  'epsilon accounts each local batch as Poisson-subsampled at rate batch_size / training '
  'rows (the TensorFlow Privacy and Opacus convention); tff_med draws batches by shuffling'
)
HOSPITAL_LEVEL_NOTE = (
  'hospital-level DP hides whether one whole hospital took part; with few hospitals the '
  'noise this allows barely protects anything, and it says nothing about single patients'
)
HOSPITAL_DROPOUT_NOTE = (
  'some rounds had fewer hospitals than planned (dropouts): each such round added the same '
  'noise to a sum of fewer updates, so its guarantee is unchanged and epsilon, counted over '
  'every round, still bounds it; but TFF divides the sum by the planned number of hospitals, '
  'so those rounds moved the model less and more noisily'
)


@dataclasses.dataclass
class PrivacyPlan:
  """Noise per protected group and the accounting that turns it into epsilon.

  At level 'patient' the groups are hospitals; at 'hospital' there is one group,
  HOSPITAL_KEY, whose mechanism runs once per round.
  """

  level: str
  delta: float
  accountant: str
  noise_multipliers: dict[str, float]
  sampling_rates: dict[str, float]
  steps_per_round: dict[str, int]
  rounds_taken: dict[str, list[int]]  # group -> rounds taken part in by round r (index r).
  l2_norm_clip: float = 0.0
  dropouts: bool = False  # Some round had fewer hospitals than planned (`observe`).

  def steps_after(self, group: str, round_num: int) -> int:
    """Mechanism runs of `group` in rounds 1..round_num."""
    if self.level == 'hospital':
      return round_num
    return self.rounds_taken[group][round_num] * self.steps_per_round[group]

  def epsilons(self, round_num: int, accountant: str | None = None) -> dict[str, float]:
    """Epsilon each group has spent by the end of `round_num`."""
    return {
      group: accounting.epsilon(
        self.sampling_rates[group],
        self.steps_after(group, round_num),
        sigma,
        self.delta,
        accountant or self.accountant,
      )
      for group, sigma in self.noise_multipliers.items()
    }

  def observe(self, planned: dict[int, list[str]], took_part: dict[int, list[str]]) -> None:
    """Counts, in each round run so far, only the hospitals that took part in it.

    A hospital that dropped out of a round ran no DP-SGD step in it and spent
    nothing; later rounds keep their planned participation. At hospital level a
    round keeps its guarantee (see HOSPITAL_DROPOUT_NOTE in the summary).
    """
    self.dropouts = any(len(took_part[r]) < len(planned[r]) for r in took_part)
    if self.level == 'hospital':
      return
    for group, counts in self.rounds_taken.items():
      steps = [b - a for a, b in zip(counts, counts[1:], strict=False)]
      for round_num, hospitals in took_part.items():
        steps[round_num - 1] = int(group in hospitals)
      self.rounds_taken[group] = list(itertools.accumulate(steps, initial=0))

  def round_metrics(self, round_num: int) -> dict[str, float]:
    """Per-round metrics: epsilon spent so far per group and the largest."""
    spent = self.epsilons(round_num)
    metrics = {f'{EPSILON_PREFIX}{group}': eps for group, eps in spent.items()}
    metrics[EPSILON_MAX] = max(spent.values())
    return metrics

  def summary(self, round_num: int) -> dict:
    """What results.json says about privacy after `round_num` rounds (both accountants)."""
    return {
      'level': self.level,
      'delta': self.delta,
      'l2_norm_clip': self.l2_norm_clip,
      'noise_multipliers': self.noise_multipliers,
      'sampling_rates': self.sampling_rates,
      'steps': {g: self.steps_after(g, round_num) for g in self.noise_multipliers},
      'epsilon_rdp': self.epsilons(round_num, 'rdp'),
      'epsilon_pld': self.epsilons(round_num, 'pld'),
      'note': self._note(),
    }

  def _note(self) -> str:
    if self.level == 'patient':
      note = SAMPLING_NOTE
      if self.dropouts:
        note += '; a hospital spent nothing in the rounds it missed (steps count those it ran)'
      return note
    return HOSPITAL_LEVEL_NOTE + ('; ' + HOSPITAL_DROPOUT_NOTE if self.dropouts else '')


def validate(config, train_sizes: dict[str, int]) -> None:
  """Checks the `privacy` block against the hospitals' training sizes, before training.

  Raises:
    ConfigError: Unknown level or accountant, noise given both or neither way,
      negative or non-finite noise, delta outside (0, 1/smallest training size),
      a non-positive clip norm or noise cap.
  """
  p = config.privacy
  if p.level not in LEVELS:
    raise unknown_name_error('privacy level', p.level, LEVELS)
  given = [n for n in ('noise_multiplier', 'target_epsilon') if p[n] is not None]
  if p.level == 'none':
    if given:
      raise ConfigError(f"privacy.{given[0]} is set but privacy.level is 'none'")
    return
  if len(given) != 1:
    raise ConfigError(
      f'privacy.level {p.level!r} needs exactly one of privacy.noise_multiplier and '
      f'privacy.target_epsilon, got {given or "neither"}'
    )
  if p.noise_multiplier is not None and not (
    math.isfinite(p.noise_multiplier) and p.noise_multiplier >= 0
  ):
    raise ConfigError(f'privacy.noise_multiplier must be finite and >= 0, got {p.noise_multiplier}')
  if p.target_epsilon is not None and not (
    math.isfinite(p.target_epsilon) and p.target_epsilon > 0
  ):
    raise ConfigError(f'privacy.target_epsilon must be finite and > 0, got {p.target_epsilon}')
  smallest = min(train_sizes, key=train_sizes.get)
  if not 0 < p.delta < 1 / train_sizes[smallest]:
    raise ConfigError(
      f'privacy.delta must be in (0, 1/n) for the smallest hospital, {smallest} with '
      f'n={train_sizes[smallest]} training rows (delta < {1 / train_sizes[smallest]:.3g}); '
      f'got {p.delta}'
    )
  for name in ('l2_norm_clip', 'max_noise_multiplier'):
    if not (math.isfinite(p[name]) and p[name] > 0):
      raise ConfigError(f'privacy.{name} must be finite and > 0, got {p[name]}')
  if p.accountant not in accounting.ACCOUNTANTS:
    raise unknown_name_error('privacy accountant', p.accountant, accounting.ACCOUNTANTS)


def _noise(p, sampling_rate: float, steps: int, who: str) -> float:
  if p.noise_multiplier is not None:
    return float(p.noise_multiplier)
  return accounting.calibrate_noise(
    sampling_rate,
    steps,
    target_epsilon=p.target_epsilon,
    delta=p.delta,
    max_noise_multiplier=p.max_noise_multiplier,
    accountant=p.accountant,
    who=who,
  )


def plan(
  config, train_sizes: dict[str, int], participation: Callable[[int], list[str]]
) -> PrivacyPlan | None:
  """The validated privacy plan of a run, or None at level 'none'.

  Args:
    config: The experiment config.
    train_sizes: Training rows per hospital.
    participation: round -> hospitals taking part.

  Raises:
    ConfigError: See `validate`; also a target epsilon no noise up to the cap
      reaches, and hospital-level noise TFF's `dp_aggregator` refuses.
  """
  validate(config, train_sizes)
  p, d = config.privacy, config.data
  if p.level == 'none':
    return None
  rounds = config.training.rounds
  if p.level == 'hospital':
    return hospital_plan(config, len(train_sizes))
  rates = {h: min(1.0, d.batch_size / n) for h, n in train_sizes.items()}
  taken = {h: [0] for h in train_sizes}
  for r in range(1, rounds + 1):
    present = set(participation(r))
    for h, counts in taken.items():
      counts.append(counts[-1] + (h in present))
  per_round = {
    h: d.local_steps or d.local_epochs * math.ceil(n / d.batch_size) for h, n in train_sizes.items()
  }
  result = PrivacyPlan(
    'patient', p.delta, p.accountant, {}, rates, per_round, taken, p.l2_norm_clip
  )
  result.noise_multipliers = {
    h: _noise(p, rates[h], result.steps_after(h, rounds), f'hospital {h}: ') for h in train_sizes
  }
  logging.info(
    'Patient-level DP-SGD, delta %g, clip %g; noise multipliers %s.',
    p.delta,
    p.l2_norm_clip,
    {h: round(s, 3) for h, s in result.noise_multipliers.items()},
  )
  return result


def hospital_plan(config, num_hospitals: int) -> PrivacyPlan:
  """The hospital-level plan: one noise multiplier for TFF's `dp_aggregator` (no shard sizes)."""
  p = config.privacy
  per_round = config.algorithm.clients_per_round or num_hospitals
  rate = per_round / num_hospitals
  sigma = _noise(p, rate, config.training.rounds, 'hospital-level DP: ')
  if not sigma < 0.1 * per_round:
    raise ConfigError(
      f'hospital-level DP needs noise multiplier < 0.1 x hospitals per round '
      f'= {0.1 * per_round:g} (TFF dp_aggregator), got {sigma:.3g}: with {per_round} hospitals '
      'per round, hospital-level DP cannot give a useful epsilon; use privacy.level=patient'
    )
  result = PrivacyPlan(
    'hospital',
    p.delta,
    p.accountant,
    {HOSPITAL_KEY: sigma},
    {HOSPITAL_KEY: rate},
    {},
    {},
  )
  eps = result.epsilons(config.training.rounds)[HOSPITAL_KEY]
  logging.warning(
    'Hospital-level DP: %s. With %d hospitals per round the noise multiplier is %.3g and '
    'epsilon after %d rounds is %.3g at delta %g.',
    HOSPITAL_LEVEL_NOTE,
    per_round,
    sigma,
    config.training.rounds,
    eps,
    p.delta,
  )
  return result
