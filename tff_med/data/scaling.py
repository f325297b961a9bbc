"""Feature standardization without pooling patient records.

Two modes, named in the config (`data.scaling`):

* 'federated': one mean and standard deviation for the whole federation,
  computed by a TFF computation in which each hospital sends only the sum,
  the sum of squares and the count of its training features
  (`tff.federated_sum`); no record leaves a hospital.
* 'per_hospital': each hospital standardizes with its own training statistics
  (FLamby's choice for Fed-Heart-Disease); nothing leaves the hospital at all.
* 'none': features are used as they are.

Image shards (examples of shape height x width x channels) are standardized per
channel in either mode: the statistics are taken over every pixel of a channel,
as image pipelines normalize, so a hospital's sums are one number per channel.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tff_med.data.shards import FederatedShards
from tff_med.errors import unknown_name_error

SCALING_MODES = ('federated', 'per_hospital', 'none')


@dataclasses.dataclass(frozen=True)
class Standardizer:
  """Mean and scale for each hospital (the same for all under 'federated')."""

  mode: str
  mean: dict[str, np.ndarray]
  std: dict[str, np.ndarray]

  def apply(self, hospital: str, x: np.ndarray) -> np.ndarray:
    """Returns `x` standardized with `hospital`'s statistics."""
    return ((x - self.mean[hospital]) / self.std[hospital]).astype(np.float32)

  def to_json(self) -> dict:
    """Returns the statistics as plain lists, for the exported model."""
    return {
      'mode': self.mode,
      'mean': {h: v.tolist() for h, v in self.mean.items()},
      'std': {h: v.tolist() for h, v in self.std.items()},
    }


def moments_from_sums(total, total_sq, count) -> tuple[np.ndarray, np.ndarray]:
  """Mean and population std from sums; a constant feature gets std 1."""
  mean = np.asarray(total, np.float64) / count
  var = np.maximum(np.asarray(total_sq, np.float64) / count - mean**2, 0.0)
  std = np.sqrt(var)
  return mean, np.where(std > 1e-12, std, 1.0)


def standardizer_from_moments(
  mode: str, hospitals: list[str], dim, hospital_moments=None, federated_moments=None
) -> Standardizer:
  """The statistics named by `mode`, from whichever sums that mode needs.

  Args:
    mode: One of `SCALING_MODES`.
    hospitals: The hospitals, in order.
    dim: Number of features, or the shape of one example (images).
    hospital_moments: For 'per_hospital': hospital -> (sum, sum of squares, count)
      of its training features.
    federated_moments: For 'federated': no-arg callable returning those sums
      added up over all hospitals (by a TFF computation).

  Raises:
    ConfigError: `mode` is unknown.
  """
  if mode == 'none':
    zero, one = np.zeros(dim), np.ones(dim)
    return Standardizer(mode, {h: zero for h in hospitals}, {h: one for h in hospitals})
  if mode == 'per_hospital':
    stats = {h: moments_from_sums(*hospital_moments(h)) for h in hospitals}
    return Standardizer(
      mode, {h: m for h, (m, _) in stats.items()}, {h: sd for h, (_, sd) in stats.items()}
    )
  if mode == 'federated':
    mean, std = moments_from_sums(*federated_moments())
    return Standardizer(mode, {h: mean for h in hospitals}, {h: std for h in hospitals})
  raise unknown_name_error('scaling mode', mode, SCALING_MODES)


def fit_standardizer(data: FederatedShards, mode: str, federated_moments=None) -> Standardizer:
  """Computes the statistics named by `mode` from the training shards.

  Args:
    data: The validated shards.
    mode: One of `SCALING_MODES`.
    federated_moments: For 'federated', a callable taking the list of
      per-hospital training arrays and returning (sum, sum of squares, count)
      summed across hospitals; `tff_med.federated_stats.federated_moments`
      is the TFF implementation.

  Raises:
    ConfigError: `mode` is unknown.
  """
  arrays = {s.hospital: _per_channel(s.x_train) for s in data.shards}
  return standardizer_from_moments(
    mode,
    data.hospitals,
    data.shards[0].x_train.shape[1:],
    hospital_moments=lambda h: (
      arrays[h].sum(0, dtype=np.float64),
      np.square(arrays[h], dtype=np.float64).sum(0),
      len(arrays[h]),
    ),
    federated_moments=lambda: federated_moments(list(arrays.values())),
  )


def _per_channel(x: np.ndarray) -> np.ndarray:
  """Images (rows, height, width, channels) as (pixels, channels); tables as they are."""
  return x.reshape(-1, x.shape[-1]) if x.ndim > 2 else x


def standardize(data: FederatedShards, standardizer: Standardizer) -> FederatedShards:
  """Returns a copy of `data` with every shard's features standardized."""
  shards = [
    dataclasses.replace(
      s,
      x_train=standardizer.apply(s.hospital, s.x_train),
      x_test=standardizer.apply(s.hospital, s.x_test),
    )
    for s in data.shards
  ]
  return dataclasses.replace(data, shards=shards)
