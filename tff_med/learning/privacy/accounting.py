"""Epsilon from noise, sampling rate and steps, with Google's `dp_accounting`.

A DP-SGD hospital runs `steps` Gaussian mechanisms, each on a batch holding a
share `sampling_rate = batch_size / training_rows` of its records. The events are
accounted as Poisson-subsampled Gaussian mechanisms, the convention of
TensorFlow Privacy's and Opacus's accountants; tff_med draws batches by
shuffling rather than by Poisson sampling, as TensorFlow Privacy's tutorials
do, and says so wherever it reports epsilon. Hospital-level DP (TFF's
`dp_aggregator`) is one Gaussian mechanism per round over the hospitals, each
taking part with probability `clients_per_round / hospitals` (1 in cross-silo).

Two accountants: 'rdp' (Renyi DP, fast, slightly loose) and 'pld' (privacy loss
distributions, tighter, slower).

Results are cached: a study asks for the same epsilons once per seed and, with
'rdp', after every round. `dp_accounting`'s RDP accountant composes `n` steps as
`n` times one step's RDP vector; `epsilon` does the same multiplication on a
cached one-step vector (its public `rdp` and `orders`, and its `compute_epsilon`),
so each round's epsilon costs one `compute_epsilon` rather than a new RDP
computation over every order (`tests/test_privacy.py` checks the two agree
exactly).
"""

from __future__ import annotations

import functools
import math

import dp_accounting
from dp_accounting import pld, rdp

from tff_med.errors import ConfigError, unknown_name_error

ACCOUNTANTS = ('rdp', 'pld')


def _accountant(name: str):
  if name == 'rdp':
    return rdp.RdpAccountant()
  if name == 'pld':
    return pld.PLDAccountant()
  raise unknown_name_error('privacy accountant', name, ACCOUNTANTS)


def gaussian_event(sampling_rate: float, steps: int, noise_multiplier: float):
  """`steps` compositions of a (subsampled) Gaussian mechanism, as a `DpEvent`."""
  event = dp_accounting.GaussianDpEvent(noise_multiplier)
  if sampling_rate < 1:
    event = dp_accounting.PoissonSampledDpEvent(sampling_rate, event)
  return dp_accounting.SelfComposedDpEvent(event, steps)


@functools.lru_cache(maxsize=1024)
def _rdp_one_step(sampling_rate: float, noise_multiplier: float):
  """(orders, RDP of one step at each order) of the RDP accountant, read-only."""
  acc = rdp.RdpAccountant()
  acc.compose(gaussian_event(sampling_rate, 1, noise_multiplier))
  orders, one_step = acc.orders, acc.rdp
  orders.flags.writeable = one_step.flags.writeable = False
  return orders, one_step


@functools.lru_cache(maxsize=1024)
def epsilon(
  sampling_rate: float, steps: int, noise_multiplier: float, delta: float, accountant: str = 'rdp'
) -> float:
  """The epsilon spent at `delta` (inf without noise, 0 without steps)."""
  if steps == 0:
    return 0.0
  if noise_multiplier == 0:
    return math.inf
  if accountant == 'rdp':
    orders, one_step = _rdp_one_step(sampling_rate, noise_multiplier)
    return float(rdp.compute_epsilon(orders, steps * one_step, delta)[0])
  acc = _accountant(accountant)
  acc.compose(gaussian_event(sampling_rate, steps, noise_multiplier))
  return float(acc.get_epsilon(delta))


@functools.lru_cache(maxsize=256)
def calibrate_noise(
  sampling_rate: float,
  steps: int,
  *,
  target_epsilon: float,
  delta: float,
  max_noise_multiplier: float,
  accountant: str = 'rdp',
  who: str = '',
) -> float:
  """The smallest noise multiplier whose epsilon at `delta` is at most `target_epsilon`.

  Raises:
    ConfigError: Even `max_noise_multiplier` spends more than `target_epsilon`.
  """
  at_max = epsilon(sampling_rate, steps, max_noise_multiplier, delta, accountant)
  if at_max > target_epsilon:
    raise ConfigError(
      f'{who}target epsilon {target_epsilon} at delta {delta} cannot be met: even noise '
      f'multiplier {max_noise_multiplier} (privacy.max_noise_multiplier) spends epsilon '
      f'{at_max:.3g} over {steps} steps at sampling rate {sampling_rate:.4g}. Raise the '
      'target or the noise cap, or train fewer steps.'
    )
  return dp_accounting.calibrate_dp_mechanism(
    lambda: _accountant(accountant),
    lambda sigma: gaussian_event(sampling_rate, steps, sigma),
    target_epsilon,
    delta,
    bracket_interval=dp_accounting.ExplicitBracketInterval(1e-3, max_noise_multiplier),
    tol=1e-3,
  )
