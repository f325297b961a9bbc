"""Federated algorithms from `tff.learning.algorithms`, selected by name.

* fedavg: FedAvg (McMahan et al., 2017), weighted by examples or uniform.
* fedavgm: FedAvg with server momentum (Hsu et al., 2019).
* fedprox: FedProx (Li et al., 2020), proximal strength `mu`.
* fedsgd: FedSGD, one gradient per client per round.
* fedadam, fedyogi, fedadagrad: adaptive server optimizers (Reddi et al., 2021).

All are TFF's own builders; tff_med only picks optimizers and wraps the model
aggregator so non-finite client updates are counted (see `non_finite`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow_federated as tff

from tff_med.errors import ConfigError, unknown_name_error
from tff_med.learning import attacks, non_finite, robust_aggregators

OPTIMIZERS = {
  'sgd': lambda lr, momentum: tff.learning.optimizers.build_sgdm(lr, momentum or None),
  'adam': lambda lr, momentum: tff.learning.optimizers.build_adam(lr),
  'yogi': lambda lr, momentum: tff.learning.optimizers.build_yogi(lr),
  'adagrad': lambda lr, momentum: tff.learning.optimizers.build_adagrad(lr),
  'adamw': lambda lr, momentum: tff.learning.optimizers.build_adamw(lr),
  'rmsprop': lambda lr, momentum: tff.learning.optimizers.build_rmsprop(lr),
}
WEIGHTINGS = {
  'num_examples': tff.learning.ClientWeighting.NUM_EXAMPLES,
  'uniform': tff.learning.ClientWeighting.UNIFORM,
}


AGGREGATORS = (
  'mean',
  'median',
  'trimmed_mean',
  'multi_krum',
  'norm_clip',
  'robust',
  'compression',
  'secure',
)


def model_aggregator(algorithm, num_clients: int) -> tff.aggregators.WeightedAggregationFactory:
  """The model-update aggregator named by `algorithm.aggregator`, wrapped to count zeroed clients.

  'mean' is TFF's weighted mean; 'robust' TFF's `robust_aggregator` (adaptive
  clipping and zeroing); 'median' and 'trimmed_mean' are tff_med's order
  statistics, 'multi_krum' drops the `krum_byzantine` updates farthest from
  the rest, and 'norm_clip' clips every update to the round's median norm
  (`robust_aggregators`); 'compression' TFF's
  `compression_aggregator` (8-bit quantization of large tensors). 'secure', the
  masked mean, needs its client work too: `learning.process.build` makes it.
  """
  name = algorithm.aggregator
  if name == 'mean':
    inner = tff.aggregators.MeanFactory()
  elif name == 'robust':
    inner = tff.learning.robust_aggregator(weighted=True)
  elif name == 'compression':
    inner = tff.learning.compression_aggregator(weighted=True)
  elif name == 'secure':
    raise ConfigError(
      "algorithm.aggregator='secure' is the masked mean of learning.secure, built with its "
      'client work by learning.process'
    )
  elif name == 'median':
    inner = robust_aggregators.coordinate_median(num_clients)
  elif name == 'multi_krum':
    inner = robust_aggregators.multi_krum(num_clients, algorithm.krum_byzantine)
  elif name == 'norm_clip':
    inner = robust_aggregators.MedianNormClipFactory(num_clients)
  elif name == 'trimmed_mean':
    inner = robust_aggregators.trimmed_mean(num_clients, algorithm.trim_fraction)
  else:
    raise unknown_name_error('aggregator', name, AGGREGATORS)
  return non_finite.CountZeroWeightFactory(inner)


@dataclasses.dataclass(frozen=True)
class ServerDefault:
  """The server optimizer an algorithm uses unless the config names one."""

  optimizer: str
  learning_rate: float
  momentum: float = 0.0


# Server optimizer each algorithm uses unless the config names one. The adaptive
# servers' learning rates come from a sweep on the heart data (benchmarks/README.md).
ALGORITHMS = {
  'fedavg': ServerDefault('sgd', 1.0),
  'fedavgm': ServerDefault('sgd', 1.0, momentum=0.9),
  'fedprox': ServerDefault('sgd', 1.0),
  'fedsgd': ServerDefault('sgd', 0.1),
  'fedadam': ServerDefault('adam', 0.3),
  'fedyogi': ServerDefault('yogi', 0.1),
  'fedadagrad': ServerDefault('adagrad', 0.3),
}


def build_optimizer(
  name: str, learning_rate: float, momentum: float = 0.0, *, side: str = 'client'
):
  """Returns `tff.learning.optimizers` optimizer `name`.

  Args:
    name: A key of `OPTIMIZERS`.
    learning_rate: Its learning rate (positive and finite).
    momentum: Its momentum (SGD only).
    side: 'client' or 'server', to name the config field in errors.

  Raises:
    ConfigError: Unknown name, or a learning rate that is not positive and finite.
  """
  if name not in OPTIMIZERS:
    raise unknown_name_error(f'{side} optimizer', name, OPTIMIZERS)
  if not 0 < learning_rate < math.inf:
    raise ConfigError(
      f'algorithm.{side}_learning_rate (the {side} optimizer {name!r}) must be a positive '
      f'number, got {learning_rate}'
    )
  return OPTIMIZERS[name](learning_rate, momentum)


def client_optimizer(algorithm):
  """The hospitals' optimizer, from an `algorithm` config block."""
  return build_optimizer(
    algorithm.client_optimizer, algorithm.client_learning_rate, algorithm.client_momentum
  )


def validate(algorithm) -> None:
  """Checks an `algorithm` config block before anything is built."""
  if algorithm.name not in ALGORITHMS:
    raise unknown_name_error('algorithm', algorithm.name, ALGORITHMS)
  if algorithm.client_weighting not in WEIGHTINGS:
    raise unknown_name_error('client weighting', algorithm.client_weighting, WEIGHTINGS)
  if algorithm.aggregator not in AGGREGATORS:
    raise unknown_name_error('aggregator', algorithm.aggregator, AGGREGATORS)
  if algorithm.aggregator == 'trimmed_mean' and not 0 <= algorithm.trim_fraction < 0.5:
    raise ConfigError(f'trim_fraction must be in [0, 0.5), got {algorithm.trim_fraction}')
  if algorithm.name == 'fedprox' and not algorithm.proximal_strength > 0:
    raise ConfigError(f'fedprox needs proximal_strength > 0, got {algorithm.proximal_strength}')
  client_optimizer(algorithm)
  server_optimizer(algorithm)


def server_optimizer(algorithm):
  """The server optimizer: the `algorithm` block's, or the algorithm's default."""
  default = ALGORITHMS[algorithm.name]
  return build_optimizer(
    algorithm.server_optimizer or default.optimizer,
    algorithm.server_learning_rate or default.learning_rate,
    algorithm.server_momentum if algorithm.server_momentum is not None else default.momentum,
    side='server',
  )


def build_learning_process(
  model_fn, algorithm, num_clients: int
) -> tff.learning.templates.LearningProcess:
  """Builds the TFF learning process named by `algorithm.name`.

  Args:
    model_fn: No-arg function returning a fresh `tff.learning.models.VariableModel`.
    algorithm: The `algorithm` block of an experiment config.
    num_clients: Most hospitals in one round (sizes the order-statistic aggregators).

  Raises:
    ConfigError: An unknown algorithm, optimizer or weighting name.
  """
  validate(algorithm)
  common = dict(
    model_aggregator=model_aggregator(algorithm, num_clients),
    loop_implementation=tff.learning.LoopImplementation.DATASET_ITERATOR,
  )
  server = server_optimizer(algorithm)
  if algorithm.name == 'fedsgd':
    return tff.learning.algorithms.build_fed_sgd(model_fn, server_optimizer_fn=server, **common)
  client = client_optimizer(algorithm)
  weighting = WEIGHTINGS[algorithm.client_weighting]
  if algorithm.name == 'fedprox':
    return tff.learning.algorithms.build_weighted_fed_prox(
      model_fn,
      proximal_strength=algorithm.proximal_strength,
      client_optimizer_fn=client,
      server_optimizer_fn=server,
      client_weighting=weighting,
      **common,
    )
  return tff.learning.algorithms.build_weighted_fed_avg(
    model_fn,
    client_optimizer_fn=client,
    server_optimizer_fn=server,
    client_weighting=weighting,
    **common,
  )


def build_attacked_learning_process(
  model_fn, algorithm, num_clients: int, attack: attacks.Attack
) -> tff.learning.templates.LearningProcess:
  """Like `build_learning_process`, but clients send `(attack dataset, dataset)`.

  Only the FedAvg family (every algorithm but fedprox and fedsgd) can be attacked
  at the update level: their client work is TFF's model-delta client work.

  Raises:
    ConfigError: The algorithm cannot be attacked, or a bad config name.
  """
  validate(algorithm)
  if algorithm.name in ('fedprox', 'fedsgd'):
    raise ConfigError(
      f'update attacks are simulated for the FedAvg family only, not {algorithm.name!r}'
    )
  inner = tff.learning.templates.build_model_delta_client_work(
    model_fn,
    client_optimizer(algorithm),
    WEIGHTINGS[algorithm.client_weighting],
    loop_implementation=tff.learning.LoopImplementation.DATASET_ITERATOR,
  )
  return compose_fed_avg(
    model_fn,
    client_work=attacks.build_attacked_client_work(
      inner, scale=attack.scale, noise_std=attack.noise_std
    ),
    server_optimizer=server_optimizer(algorithm),
    model_aggregator=model_aggregator(algorithm, num_clients),
  )


def compose_fed_avg(
  model_fn, *, client_work, server_optimizer, model_aggregator
) -> tff.learning.templates.LearningProcess:
  """A FedAvg-family learning process around a custom `client_work`.

  Composed from TFF's own templates exactly as `build_weighted_fed_avg` does.
  """

  @tff.tensorflow.computation
  def initial_model_weights():
    return tff.learning.models.ModelWeights.from_model(model_fn())

  weights_type = initial_model_weights.type_signature.result
  return tff.learning.templates.compose_learning_process(
    initial_model_weights,
    tff.learning.templates.build_broadcast_process(weights_type),
    client_work,
    # What the client work sends: the update, or <update, mask> (learning.secure).
    model_aggregator.create(
      client_work.next.type_signature.result.result.member.update, tff.TensorType(np.float32)
    ),
    tff.learning.templates.build_apply_optimizer_finalizer(server_optimizer, weights_type),
  )
