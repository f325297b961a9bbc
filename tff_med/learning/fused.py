"""A fused FedAvg engine for small cross-silo studies: a round's local training in one XLA call.

TFF runs every hospital's local training as a call into its C++ worker; with a
few hospitals of tabular data the runtime, not the arithmetic, sets the pace
(`benchmarks/round_overhead.py`: the heart round's arithmetic compiled by XLA
takes 16 ms, TFF's round 70-100 ms). This engine runs the same round in this
process from TFF's own pieces, in the order `build_weighted_fed_avg` applies
them: the task's `tff.learning.models.VariableModel` (`forward_pass`), the
`tff.learning.optimizers` of client and server, TFF's
`zero_all_if_any_non_finite` for a client's update and for the aggregate
(model_delta_client_work, MeanFactory, apply_optimizer_finalizer). Every
hospital's local steps run in one XLA call (`fused_clients`: a loop over the
round's hospitals, their batches stacked: `fused_run.RoundInputs`), so a round
costs its steps, not a call per hospital (`benchmarks/scale.py`); this module
is the server's side. TFF has no such path, so this one is ours; it is held to
TFF: `tests/test_fused.py` runs seeded studies both ways and requires the same
weights after every round (1e-6), the same training metrics (1e-5) and the same
zeroed-hospital reports.

It supports what it is proved equal on: the FedAvg family (FedAvg, FedAvgM,
FedProx as TFF writes it, FedAdam, FedYogi, FedAdagrad) with the client and
server optimizers they were measured with (`OPTIMIZERS`), the mean, median,
trimmed-mean, Multi-Krum and median-norm-clip aggregators and TFF's robust aggregator
(`fused_aggregation`), a fixed number of local steps (XLA needs fixed shapes),
models of dense layers with or without dropout (`logistic_regression`, `mlp`;
`seeded_dropout` draws TFF's masks bit for bit), label flipping and the update attacks
(`attacks.corrupt` after TFF's zeroing, as tff_med's attacked client work), and
patient-level DP-SGD (`privacy.dp_sgd`'s clipping, and its noise from the same
stateless seeds; hospital-level DP is not covered). Float rounding differs
from TFF's (XLA fuses operations); optimizers that normalize or accumulate
(Adam, server momentum) carry it further: `benchmarks/fused_equality.py` prints
the differences per algorithm on the heart job. Convolutions were measured 15x
slower than TFF under XLA on CPU (2026-11-26). `fused_support` names whatever
else a config asks for, and resolves `runtime.engine='auto'`. Its runs evaluate
in this process (`fused_evaluation`).
"""

from __future__ import annotations

import collections
import copy

import tensorflow as tf
import tensorflow_federated as tff

# TFF's own check, the one its finalizer applies to the aggregate; not exported.
from tensorflow_federated.python.learning.tensor_utils import zero_all_if_any_non_finite

from tff_med.learning import algorithms, attacks, fused_aggregation, metrics
from tff_med.learning.fused_clients import FusedClients


def _where(kept, stacked):
  """`stacked` [hospital, ...] with the rows of hospitals not `kept` zeroed."""
  return tf.where(
    tf.reshape(kept, [-1] + [1] * (stacked.shape.rank - 1)), stacked, tf.zeros_like(stacked)
  )


def _numpy(structure):
  # Through tensors, so Python floats (optimizer hyperparameters) stay float32.
  return tf.nest.map_structure(lambda t: tf.convert_to_tensor(t).numpy(), structure)


class FusedFedAvg:
  """A FedAvg round in this process, shaped like TFF's learning process.

  `initialize()`, `next(state, datasets)` and `get_model_weights(state)` behave
  as the TFF process's do (the training loop cannot tell them apart); the
  state is {'trainable': [...], 'server_optimizer': ..., 'aggregator': ...} of NumPy
  arrays (the aggregator's: `fused_aggregation.initial_state`).

  Args:
    task: A `tff_med.task.Task`.
    config: The `algorithm` block of the experiment config.
    clients: The round's client work (`fused_clients.FusedClients`), which may be
      shared with other engines of the same model and client training.
    attack: An `attacks.Attack`, or None.
  """

  def __init__(self, task, config, clients: FusedClients, attack=None):
    fused_aggregation.check(config, len(task.data.hospitals))
    # Accuracy and AUC are sums over examples, updated once per hospital below.
    self._summed = [build() for build in metrics.metric_builders(task.data.num_classes)]
    self._clients = clients
    self._server_optimizer = algorithms.server_optimizer(config)
    self._uniform = config.client_weighting == 'uniform'
    self._algorithm = config
    self._attack = attack if attack is not None and attack.kind in attacks.UPDATE_ATTACKS else None
    # TFF's model-delta client work resets a zeroed hospital's training metrics;
    # its FedProx client work does not (tff.learning.templates.proximal_client_work).
    self._zeroed_metrics_count = config.name == 'fedprox'
    self._round = tf.function(self._server_round)
    self._start = [v.numpy() for v in task.keras_model().trainable_variables]

  def starting_from(self, keras_model: tf.keras.Model) -> FusedFedAvg:
    """This engine (its compiled rounds shared) starting from `keras_model`'s weights:
    another seed's run of the same model and algorithm."""
    seeded = copy.copy(self)
    seeded._start = [v.numpy() for v in keras_model.trainable_variables]  # noqa: SLF001
    return seeded

  def initialize(self) -> dict:
    """The initial state: the model's seeded weights and a fresh server optimizer."""
    return {
      'trainable': list(self._start),
      'server_optimizer': _numpy(self._server_optimizer.initialize(self._clients.specs)),
      'aggregator': _numpy(fused_aggregation.initial_state(self._algorithm)),
    }

  def get_model_weights(self, state) -> tff.learning.models.ModelWeights:
    """The state's model weights, as TFF's process returns them."""
    return tff.learning.models.ModelWeights(trainable=list(state['trainable']), non_trainable=[])

  def next(self, state, inputs) -> tff.learning.templates.LearningProcessOutput:
    """One round over `inputs` (`fused_run.RoundInputs`: every hospital's `local_steps`
    batches, attack code, seed and DP noise multiplier, stacked)."""
    trainable, optimizer_state, aggregator_state, measured = self._round(
      list(state['trainable']),
      state['server_optimizer'],
      state['aggregator'],
      tuple(tf.convert_to_tensor(part) for part in inputs),
    )
    new_state = {
      'trainable': _numpy(trainable),
      'server_optimizer': _numpy(optimizer_state),
      'aggregator': _numpy(aggregator_state),
    }
    return tff.learning.templates.LearningProcessOutput(new_state, _numpy(measured))

  def _server_round(self, trainable, optimizer_state, aggregator_state, inputs):
    xs, ys, codes, seeds, noises = inputs
    count = xs.shape[0]
    for variable in [v for m in self._summed for v in m.variables]:
      variable.assign(tf.zeros_like(variable))
    clients = self._clients
    stacked, non_finite, num_examples, predictions, unfinalized = clients.train(
      trainable, xs, ys, clients.noise(seeds, noises, count)
    )
    corrupt = None
    if self._attack is not None:  # As tff_med's attacked client work: after TFF's zeroing.
      a = self._attack

      def corrupt(h, update):
        return attacks.corrupt(update, codes[h], a.scale, a.noise_std, seeds[h])

    finite = tf.equal(non_finite, 0)
    weights = tf.where(finite, 1.0 if self._uniform else tf.cast(num_examples, tf.float32), 0.0)
    zeroed = tf.reduce_sum(tf.cast(tf.equal(weights, 0.0), tf.int32))
    # A zeroed hospital's metrics add nothing, where TFF resets them.
    counted = tf.logical_or(finite, self._zeroed_metrics_count)
    counts = tf.nest.map_structure(lambda t: tf.reduce_sum(_where(counted, t), axis=0), unfinalized)
    if clients.clip is None:
      labels = tf.reshape(ys, [-1, *ys.shape[3:]])
      predicted = tf.reshape(predictions, [-1, *predictions.shape[3:]])
      per_example = tf.repeat(tf.cast(counted, tf.float32), clients.steps * xs.shape[2])
      weight = tf.reshape(per_example, [-1] + [1] * (predicted.shape.rank - 1))
      for metric in self._summed:
        metric.update_state(labels, predicted, sample_weight=weight)
    mean, aggregator_state = fused_aggregation.aggregate_stacked(
      self._algorithm, stacked, weights, count, aggregator_state, corrupt
    )
    new_state, new_trainable = self._server_optimizer.next(
      optimizer_state, tuple(trainable), tuple(mean)
    )
    _, rejected = zero_all_if_any_non_finite(mean)
    if tf.equal(rejected, 1):
      new_state, new_trainable = optimizer_state, tuple(trainable)
    train = collections.OrderedDict((m.name, m.result()) for m in self._summed)
    train['loss'] = tf.math.divide_no_nan(counts['loss'][0], counts['loss'][1])
    train['num_examples'] = counts['num_examples'][0]
    train['num_batches'] = counts['num_batches'][0]
    if clients.clip is not None:  # DP-SGD reports only the examples (the rest is unaccounted).
      train = collections.OrderedDict(num_examples=tf.reduce_sum(num_examples))
    measured = collections.OrderedDict(
      client_work=collections.OrderedDict(train=train),
      aggregator=collections.OrderedDict(zero_weight_clients=zeroed),
      finalizer=collections.OrderedDict(update_non_finite=rejected),
    )
    return list(new_trainable), new_state, aggregator_state, measured
