"""Patient-level differential privacy: DP-SGD inside each hospital (Abadi et al., 2016).

TFF offers only client-level (here: hospital-level) DP aggregators. The unit an
ethics board asks about is one patient record, so this is a custom client work
built on TFF's templates (`ClientWorkProcess`, `ClientResult`); the DP-SGD step
itself is ours. At every local step a hospital computes one gradient per
patient, clips each to L2 norm `l2_norm_clip`, sums them, adds Gaussian noise of
standard deviation `noise_multiplier * l2_norm_clip`, divides by the batch size
and hands the noisy gradient to the client optimizer (any optimizer is
post-processing). The update that leaves the hospital is therefore
differentially private with respect to each of its training records;
`privacy.accounting` turns the noise, sampling rate and steps into epsilon.

Each hospital's noise multiplier and noise seed travel next to its data as a
one-element dataset (`params_dataset`; TFF client works take only sequences):
one epsilon target needs more noise at a small hospital than at a large one, and
in a deployment each hospital applies its own. The client reports only the
number of examples it processed: training loss and accuracy would be released
without noise, outside the accounted epsilon.

Seeded noise makes simulations reproducible; a production deployment should
seed it from a secure random source instead.
"""

from __future__ import annotations

import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

PARAMS_TYPE = tff.SequenceType((tff.TensorType(np.float32), tff.TensorType(np.int64, [2])))


def params_dataset(noise_multiplier, seed) -> tf.data.Dataset:
  """The one-element dataset that gives a hospital its noise multiplier and noise seed.

  Takes Python or NumPy values, or tensors (in the worker: `data.resident`).
  """
  return tf.data.Dataset.from_tensors(
    (tf.cast(noise_multiplier, tf.float32), tf.cast(seed, tf.int64))
  )


def clip_and_sum(per_example_grads: list[tf.Tensor], l2_norm_clip: float) -> list[tf.Tensor]:
  """Clips each example's gradient (across all variables) to `l2_norm_clip`, then sums.

  Args:
    per_example_grads: One tensor per variable, each with the batch as axis 0.
    l2_norm_clip: The largest L2 norm one example's gradient may have.
  """
  squared = [
    tf.reduce_sum(tf.reshape(tf.square(g), [tf.shape(g)[0], -1]), axis=1) for g in per_example_grads
  ]
  norms = tf.sqrt(tf.add_n(squared))
  factors = 1.0 / tf.maximum(1.0, norms / l2_norm_clip)
  return [tf.tensordot(factors, g, axes=1) for g in per_example_grads]


def _build_client_update(model, per_example_loss, optimizer, l2_norm_clip, weighted):
  """A `tf.function` running DP-SGD over one hospital's data from the given weights."""

  @tf.function
  def client_update(initial_weights, params, data):
    noise_multiplier, seed = params.reduce(
      (tf.constant(0.0), tf.zeros([2], tf.int64)), lambda _, element: element
    )
    weights = tff.learning.models.ModelWeights.from_model(model)
    tf.nest.map_structure(lambda v, t: v.assign(t), weights, initial_weights)
    trainable = tuple(weights.trainable)
    specs = tuple(tf.TensorSpec(v.shape, v.dtype) for v in trainable)

    def step(state, batch):
      num_examples, step_num, optimizer_state = state
      x, y = batch
      with tf.GradientTape() as tape:
        losses = per_example_loss(y, model.predict_on_batch(x, training=True))
      summed = clip_and_sum(tape.jacobian(losses, trainable), l2_norm_clip)
      batch_size = tf.shape(losses)[0]
      noisy = []
      for i, total in enumerate(summed):
        noise_seed = tf.random.experimental.stateless_fold_in(seed, step_num * 1000 + i)
        noise = tf.random.stateless_normal(
          tf.shape(total), seed=noise_seed, stddev=noise_multiplier * l2_norm_clip
        )
        noisy.append((total + noise) / tf.cast(batch_size, tf.float32))
      optimizer_state, updated = optimizer.next(optimizer_state, trainable, tuple(noisy))
      for variable, value in zip(trainable, updated, strict=True):
        variable.assign(value)
      return num_examples + tf.cast(batch_size, tf.int64), step_num + 1, optimizer_state

    num_examples, _, _ = data.reduce(
      (tf.constant(0, tf.int64), tf.constant(0, tf.int64), optimizer.initialize(specs)), step
    )
    update = [a - b for a, b in zip(initial_weights.trainable, trainable, strict=True)]
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(u)) for u in update])
    # As TFF's own client work does: a non-finite update is zeroed with weight 0
    # (and counted by `non_finite.CountZeroWeightFactory`).
    update = [tf.where(finite, u, tf.zeros_like(u)) for u in update]
    weight = tf.cast(num_examples, tf.float32) if weighted else tf.constant(1.0)
    weight = tf.where(finite, weight, 0.0)
    return tff.learning.templates.ClientResult(update=update, update_weight=weight), num_examples

  return client_update


def build_dp_sgd_client_work(
  model_fn,
  per_example_loss,
  optimizer: tff.learning.optimizers.Optimizer,
  *,
  l2_norm_clip: float,
  weighted: bool = True,
) -> tff.learning.templates.ClientWorkProcess:
  """A client work whose clients train with DP-SGD; client data is `(params, dataset)`.

  Args:
    model_fn: No-arg function returning a fresh `tff.learning.models.VariableModel`.
    per_example_loss: (labels, predictions) -> one loss per example (reduction none).
    optimizer: The client's `tff.learning.optimizers` optimizer (fed noisy gradients).
    l2_norm_clip: Per-example gradient clipping norm.
    weighted: Weight each update by the examples processed (else uniformly).

  Returns:
    A `tff.learning.templates.ClientWorkProcess` with stateless server state and
    measurements `{'train': {'num_examples': ...}}`.
  """
  with tf.Graph().as_default():
    model = model_fn()
  data_type = tff.SequenceType(tff.types.tensorflow_to_type(model.input_spec))
  weights_type = tff.learning.models.weights_type_from_model(model)

  @tff.federated_computation
  def init_fn():
    return tff.federated_value((), tff.SERVER)

  @tff.tensorflow.computation(weights_type, PARAMS_TYPE, data_type)
  def client_update(initial_weights, params, data):
    update_fn = _build_client_update(
      model_fn(), per_example_loss, optimizer, l2_norm_clip, weighted
    )
    return update_fn(initial_weights, params, data)

  @tff.federated_computation(
    init_fn.type_signature.result,
    tff.FederatedType(weights_type, tff.CLIENTS),
    tff.FederatedType((PARAMS_TYPE, data_type), tff.CLIENTS),
  )
  def next_fn(state, weights, client_data):
    result, num_examples = tff.federated_map(
      client_update, (weights, client_data[0], client_data[1])
    )
    measurements = tff.federated_zip(
      collections.OrderedDict(
        train=collections.OrderedDict(num_examples=tff.federated_sum(num_examples))
      )
    )
    return tff.templates.MeasuredProcessOutput(state, result, measurements)

  return tff.learning.templates.ClientWorkProcess(init_fn, next_fn)
