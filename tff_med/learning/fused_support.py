"""What the fused engine (`fused.py`) is proved equal to TFF on, and `runtime.engine='auto'`.

Every setting outside it is named in a ConfigError (`check_supported`), or,
with 'auto', sends the run to TFF's engine with the reason logged (`choose`).
"""

from __future__ import annotations

import tensorflow as tf

from tff_med.errors import ConfigError
from tff_med.learning import attacks, fused_aggregation
from tff_med.learning.seeded_dropout import SeededDropout

ENGINES = ('tff', 'fused', 'auto')
# The FedAvg family: TFF's model-delta client work (FedProx's proximal variant), and
# the optimizers measured equal to TFF at each side (tests/test_fused.py).
ALGORITHMS = ('fedavg', 'fedavgm', 'fedprox', 'fedadam', 'fedyogi', 'fedadagrad')
OPTIMIZERS = {'client': ('sgd', 'adam'), 'server': ('sgd', 'adam', 'yogi', 'adagrad')}
# Layers the equality with TFF was measured on (tests/test_fused.py).
LAYERS = (
  tf.keras.layers.InputLayer,
  tf.keras.layers.Dense,
  tf.keras.layers.Flatten,
  tf.keras.layers.Activation,
  SeededDropout,
)


def unsupported(config, *, privacy_plan, attack) -> list[str]:
  """The settings of `config` the fused engine is not proved equal to TFF on (none: supported)."""
  a = config.algorithm
  refused = {
    f'algorithm.name={a.name!r} (only {", ".join(ALGORITHMS)})': a.name not in ALGORITHMS,
    f'algorithm.aggregator={a.aggregator!r} (only {", ".join(fused_aggregation.AGGREGATORS)})': (
      a.aggregator not in fused_aggregation.AGGREGATORS
    ),
    f'algorithm.client_optimizer={a.client_optimizer!r}': (
      a.client_optimizer not in OPTIMIZERS['client']
    ),
    f'algorithm.server_optimizer={a.server_optimizer!r}': (
      a.server_optimizer not in (None, *OPTIMIZERS['server'])
    ),
    'data.local_epochs (XLA needs a fixed number of local_steps)': config.data.local_steps < 1,
    f'privacy.level={config.privacy.level!r} (patient level only)': (
      privacy_plan is not None and privacy_plan.level != 'patient'
    ),
    f'attack.kind={config.attack.kind!r} with algorithm.name={a.name!r} (TFF refuses it too)': (
      attack is not None and attack.kind in attacks.UPDATE_ATTACKS and a.name == 'fedprox'
    ),
  }
  return [name for name, on in refused.items() if on]


def check_supported(config, *, privacy_plan, attack) -> None:
  """Refuses what the fused engine is not proved equal to TFF on, naming each setting.

  Raises:
    ConfigError: An unsupported algorithm, aggregator, plan, privacy or attack.
  """
  named = unsupported(config, privacy_plan=privacy_plan, attack=attack)
  if named:
    raise ConfigError(
      f"runtime.engine='fused' does not support {'; '.join(named)}; use runtime.engine='tff'"
    )


def _other_layers(keras_model: tf.keras.Model) -> list[str]:
  return [
    f'{layer.name} ({type(layer).__name__})'
    for layer in keras_model.layers
    if not isinstance(layer, LAYERS)
  ]


def dense_only(keras_model: tf.keras.Model) -> bool:
  """Whether every layer is one of `LAYERS`: the models XLA runs fast on CPU.

  (A convolution ran 15x slower under XLA than in TensorFlow's graph; benchmarks/README.)
  """
  return not _other_layers(keras_model)


def check_model(keras_model: tf.keras.Model) -> None:
  """Refuses a model with layers the fused engine was not proved on (`LAYERS`)."""
  other = _other_layers(keras_model)
  if other:
    raise ConfigError(
      "runtime.engine='fused' runs models of dense layers and tff_med's SeededDropout "
      f"(logistic_regression, mlp); this model has {', '.join(other)}; use runtime.engine='tff'"
    )


def choose(config, task, *, privacy_plan, attack) -> tuple[str, str]:
  """`runtime.engine='auto'`: ('fused', why) where it is proved equal to TFF, else ('tff', why)."""
  why_not = unsupported(config, privacy_plan=privacy_plan, attack=attack)
  if task.data.survival:
    why_not.append('a survival task (proved on classification losses only)')
  else:
    why_not += _other_layers(task.keras_model())
  if why_not:
    return 'tff', f'the fused engine does not support {"; ".join(why_not)}'
  return 'fused', 'the fused engine is proved equal to TFF on this configuration'
