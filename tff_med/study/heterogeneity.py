"""How different the hospitals are, measured before training without pooling records.

Each hospital's training shard is reduced at that hospital (a TFF computation
over a single client, so the server sees only that hospital's count, label
counts, feature sums and sums of squares). Missing-value rates are counted by
the shard reader at the hospital and travel as rates only.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_med import runtime  # noqa: F401  (installs the owned TFF context these calls run in)
from tff_med.data.shards import FederatedShards


def _summary_computation(dim: int, num_classes: int):
  client_type = tff.FederatedType(
    (tff.TensorType(np.float32, [None, dim]), tff.TensorType(np.int32, [None])), tff.CLIENTS
  )

  @tff.tensorflow.computation(client_type.member)
  def local_summary(data):
    x, y = data
    x = tf.cast(x, tf.float64)
    return (
      tf.cast(tf.shape(x)[0], tf.float64),
      tf.reduce_sum(x, 0),
      tf.reduce_sum(tf.square(x), 0),
      tf.reshape(
        tf.cast(tf.math.bincount(y, minlength=num_classes, maxlength=num_classes), tf.float64),
        [num_classes],
      ),
    )

  @tff.federated_computation(client_type)
  def summary(client_data):
    return tff.federated_sum(tff.federated_map(local_summary, client_data))

  return summary


def hospital_summaries(raw: FederatedShards) -> dict[str, dict]:
  """Per hospital: n, label prevalence (event rate in a survival study), feature means and sds,
  missing rates (train shard)."""
  computation = _summary_computation(len(raw.feature_names), 2 if raw.survival else raw.num_classes)
  summaries = {}
  for shard in raw.shards:
    labels = shard.y_train[:, 1] if raw.survival else shard.y_train
    n, total, total_sq, counts = computation(
      [(shard.x_train.reshape(len(shard.x_train), -1), labels.astype(np.int32))]
    )
    mean = np.asarray(total) / n
    summaries[shard.hospital] = {
      'n_train': int(n),
      'n_test': len(shard.y_test),
      'prevalence': float(np.asarray(counts)[-1] / n),
      'rate_name': 'event rate' if raw.survival else 'prevalence',  # What `prevalence` holds.
      'mean': mean,
      'sd': np.sqrt(np.maximum(np.asarray(total_sq) / n - mean**2, 0)),
      'missing_rate': shard.missing_rate,
    }
  return summaries


def to_markdown(summaries: dict[str, dict], feature_names: list[str]) -> str:
  """Two tables: sizes and prevalence, then feature mean (sd) and missing rate per hospital."""
  hospitals = list(summaries)
  rate = next(iter(summaries.values()))['rate_name']
  lines = [f'| hospital | train n | test n | {rate} (train) |', '|---|---:|---:|---:|']
  for h, s in summaries.items():
    lines.append(f'| {h} | {s["n_train"]} | {s["n_test"]} | {s["prevalence"]:.2f} |')
  lines += ['', '| feature | ' + ' | '.join(hospitals) + ' |', '|---|' + '---:|' * len(hospitals)]
  for i, name in enumerate(feature_names[:64]):
    cells = [
      f'{summaries[h]["mean"][i]:.2f} ({summaries[h]["sd"][i]:.2f})'
      + (
        f', {summaries[h]["missing_rate"][i]:.0%} missing'
        if summaries[h]['missing_rate'][i]
        else ''
      )
      for h in hospitals
    ]
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def to_rows(summaries: dict[str, dict], feature_names: list[str]) -> list[dict]:
  """One CSV row per hospital and feature."""
  return [
    {
      'hospital': h,
      'feature': name,
      'n_train': s['n_train'],
      s['rate_name'].replace(' ', '_'): s['prevalence'],
      'mean': float(s['mean'][i]),
      'sd': float(s['sd'][i]),
      'missing_rate': float(s['missing_rate'][i]),
    }
    for h, s in summaries.items()
    for i, name in enumerate(feature_names)
  ]
