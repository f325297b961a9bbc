"""A secure run's settings, checked before the first round."""

from __future__ import annotations

import dataclasses
import math

from tff_med.errors import ConfigError
from tff_med.learning.secure.aggregator import Quantization
from tff_med.learning.secure.masks import MAX_PEERS_CHARS

MAX_MODULUS_BITS = 32  # One ChaCha20 word per value; sums of int64 never overflow.


def quantization(config) -> Quantization:
  """The `secure` block as a `Quantization` (checked)."""
  s = config.secure
  if not 0 < s.clip < math.inf:
    raise ConfigError(f'secure.clip must be a positive number, got {s.clip}')
  if not 2 <= s.modulus_bits <= MAX_MODULUS_BITS:
    raise ConfigError(
      f'secure.modulus_bits must be in [2, {MAX_MODULUS_BITS}], got {s.modulus_bits}'
    )
  if not 1 <= s.quantization_bits < s.modulus_bits:
    raise ConfigError(
      f'secure.quantization_bits must be in [1, secure.modulus_bits - 1], got {s.quantization_bits}'
    )
  return Quantization(float(s.clip), int(s.quantization_bits), int(s.modulus_bits))


def max_weight(config) -> int:
  """The largest weight one hospital's update can carry, known before any shard is seen.

  Raises:
    ConfigError: Example weighting with `data.local_epochs` (the weight is then
      the shard's row count, which the computations must not depend on).
  """
  if config.algorithm.client_weighting == 'uniform':
    return 1
  if not config.data.local_steps:
    raise ConfigError(
      "secure aggregation weighted by examples needs data.local_steps (every hospital's "
      'weight is then local_steps x batch_size); with data.local_epochs set '
      "algorithm.client_weighting='uniform'"
    )
  return int(config.data.local_steps * config.data.batch_size)


def check(config, hospitals: list[str]) -> Quantization:
  """Refuses a secure run that could not be exact or would reveal one hospital's update.

  Raises:
    ConfigError: naming the setting: a modulus too small for the hospitals and
      the quantization (the sum could wrap), a round that could hold one
      hospital, an algorithm or privacy level the masked mean cannot carry.
  """
  q = quantization(config)
  a = config.algorithm
  if a.name == 'fedsgd':
    raise ConfigError(
      "algorithm.aggregator='secure' runs with the FedAvg family and FedProx, not 'fedsgd'"
    )
  if config.privacy.level == 'hospital':
    raise ConfigError(
      "algorithm.aggregator='secure' with privacy.level='hospital': TFF's dp_aggregator "
      "replaces the aggregator; use privacy.level='patient'"
    )
  per_round = a.clients_per_round or len(hospitals)
  fewest = [per_round, len(hospitals)]
  if config.deployment.min_hospitals is not None:
    fewest.append(config.deployment.min_hospitals)
  if min(fewest) < 2:
    raise ConfigError(
      "secure aggregation needs at least two hospitals in every round (a lone hospital's "
      'masked update would be its update): check algorithm.clients_per_round and '
      'deployment.min_hospitals'
    )
  if len('+'.join(hospitals)) > MAX_PEERS_CHARS:
    raise ConfigError(
      f'secure aggregation names the hospitals of a round in one file name: their names '
      f'joined by "+" must be at most {MAX_PEERS_CHARS} characters'
    )
  reach = per_round * max_weight(config) * (2**q.quantization_bits - 1)
  if reach >= 2**q.modulus_bits:
    room = (2**q.modulus_bits - 1) // (per_round * max_weight(config))
    raise ConfigError(
      f'secure.modulus_bits={q.modulus_bits} is too small: {per_round} hospitals of weight '
      f'up to {max_weight(config)} with secure.quantization_bits={q.quantization_bits} '
      f'sum to up to {reach} >= 2^{q.modulus_bits}, so the sum could wrap; use '
      f'secure.quantization_bits <= {(room + 1).bit_length() - 1} or fewer examples per round'
    )
  return dataclasses.replace(q, max_weight=max_weight(config))
