"""Adversarial hospitals for robustness studies: what if one site sends garbage.

Label flipping corrupts a hospital's training labels before training. The
update attacks (sign flip with a scale, scaling, Gaussian noise) corrupt the
model update a hospital sends: `build_attacked_client_work` wraps TFF's own
`build_model_delta_client_work` so that each client receives an attack code
next to its dataset and, when the code is non-zero, replaces its update before
it leaves. TFF has no attack simulation; this wrapper is ours.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_med.errors import ConfigError

UPDATE_ATTACKS = {'sign_flip': 1, 'scale': 2, 'gaussian_noise': 3}
ATTACKS = ('label_flip', *UPDATE_ATTACKS)


@dataclasses.dataclass(frozen=True)
class Attack:
  """Which hospitals attack, how, and how hard."""

  kind: str
  hospitals: tuple[str, ...]
  scale: float = 10.0
  noise_std: float = 1.0

  def validate(self, all_hospitals: list[str]) -> None:
    """Raises ConfigError for an unknown kind, unknown hospitals, or all hospitals attacking."""
    if self.kind not in ATTACKS:
      raise ConfigError(f'Unknown attack {self.kind!r}; valid attacks are: {", ".join(ATTACKS)}')
    unknown = [h for h in self.hospitals if h not in all_hospitals]
    if unknown:
      raise ConfigError(
        f'adversarial hospitals {unknown} are not hospitals of this study; '
        f'hospitals are {all_hospitals}'
      )
    if len(set(self.hospitals)) >= len(all_hospitals):
      raise ConfigError(
        f'{len(set(self.hospitals))} adversaries among {len(all_hospitals)} '
        'hospitals: at least one hospital must be honest'
      )

  def code(self, hospital: str) -> int:
    """The update-attack code a hospital's client receives (0: honest)."""
    if hospital in self.hospitals and self.kind in UPDATE_ATTACKS:
      return UPDATE_ATTACKS[self.kind]
    return 0


def from_config(block, hospitals: list[str]) -> Attack | None:
  """The config's `attack` block as a validated `Attack`, or None for kind 'none'."""
  if block.kind == 'none':
    return None
  attack = Attack(block.kind, tuple(block.hospitals), block.scale, block.noise_std)
  attack.validate(hospitals)
  if not attack.hospitals:
    raise ConfigError(f'attack {attack.kind!r} names no adversarial hospital (attack.hospitals)')
  return attack


def with_flipped_labels(data, attack: Attack):
  """`data` with the adversaries' training labels flipped (the label_flip attack)."""
  shards = [
    dataclasses.replace(s, y_train=flip_labels(s.y_train, data.num_classes))
    if s.hospital in attack.hospitals
    else s
    for s in data.shards
  ]
  return dataclasses.replace(data, shards=shards)


def flip_labels(y: np.ndarray, num_classes: int) -> np.ndarray:
  """Label flipping: class c becomes (c + 1) mod num_classes (0 <-> 1 for binary)."""
  return ((y + 1) % num_classes).astype(y.dtype)


def corrupt(update, code, scale, noise_std, seed):
  """The update a client sends under attack `code`."""

  def flip():
    return tf.nest.map_structure(lambda u: -scale * u, update)

  def scaled():
    return tf.nest.map_structure(lambda u: scale * u, update)

  def noise():
    return tf.nest.map_structure(
      lambda u: tf.random.stateless_normal(tf.shape(u), seed=seed, stddev=noise_std), update
    )

  return tf.switch_case(code, [lambda: update, flip, scaled, noise])


# What `attack_dataset` gives: the attack code and the noise seed.
ATTACK_TYPE = tff.SequenceType((tff.TensorType(np.int32), tff.TensorType(np.int64, [2])))


def attack_dataset(code, seed) -> tf.data.Dataset:
  """The one-element dataset that tells a client its attack code and noise seed.

  Takes Python or NumPy values, or tensors (in the worker: `data.resident`).
  """
  return tf.data.Dataset.from_tensors((tf.cast(code, tf.int32), tf.cast(seed, tf.int64)))


def build_attacked_client_work(
  inner: tff.learning.templates.ClientWorkProcess, *, scale: float, noise_std: float
):
  """Wraps a client work so each client receives `(attack dataset, training dataset)`.

  TFF's client works take only sequences as client data, so the attack code
  travels as a one-element dataset (`attack_dataset`).
  """
  state_type, weights_type, data_type = inner.next.type_signature.parameter
  result_type = inner.next.type_signature.result.result.member
  client_data_type = tff.FederatedType((ATTACK_TYPE, data_type.member), tff.CLIENTS)

  @tff.tensorflow.computation(result_type, ATTACK_TYPE)
  def attacked_result(result, code_data):
    code, seed = code_data.reduce(
      (tf.constant(0, tf.int32), tf.zeros([2], tf.int64)), lambda _, element: element
    )
    return tff.learning.templates.ClientResult(
      update=corrupt(result.update, code, scale, noise_std, seed),
      update_weight=result.update_weight,
    )

  @tff.federated_computation(state_type, weights_type, client_data_type)
  def next_fn(state, weights, client_data):
    output = inner.next(state, weights, client_data[1])
    attacked = tff.federated_map(attacked_result, (output.result, client_data[0]))
    return tff.templates.MeasuredProcessOutput(output.state, attacked, output.measurements)

  return tff.learning.templates.ClientWorkProcess(inner.initialize, next_fn)
