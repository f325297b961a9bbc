"""A learning process whose clients send names, and whose workers load the data themselves.

Both routes use this: the simulation's loaders read arrays the local worker
keeps (`resident`), a deployment's read the hospital's files
(`deployment.remote_data`). TFF's `compose_dataset_computation_with_learning_process`
composes a process whose clients take one dataset; the patient-level DP and
update-attack processes take (parameters, data) pairs, which TFF's function
refuses, so `compose_with_learning_process` is ours.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff


def compose_with_learning_process(loader: tff.Computation, process):
  """`process`, its clients sending `loader`'s input; each worker runs `loader` for their data."""

  @tff.federated_computation(
    process.next.type_signature.parameter[0],
    tff.FederatedType(loader.type_signature.parameter, tff.CLIENTS),
  )
  def next_fn(state, inputs):
    return process.next(state, tff.federated_map(loader, inputs))

  return tff.learning.templates.LearningProcess(
    process.initialize, next_fn, process.get_model_weights, process.set_model_weights
  )


def mask_dataset(path, size: int) -> tf.data.Dataset:
  """The one-element dataset of the mask file at `path` (int64, checked to be `size` long)."""
  values = tf.io.decode_raw(tf.io.read_file(path), tf.int64, little_endian=True)
  return tf.data.Dataset.from_tensors(tf.ensure_shape(values, [size]))


def compose_with_masks(load_inner: tff.Computation, process, size: int):
  """`process` with masked clients, its clients sending <mask=token, data=`load_inner`'s input>.

  Each worker reads the mask file the token names (written by the hospital's
  side, `learning.secure.masks`) and runs `load_inner` for the rest.
  """

  @tff.tensorflow.computation(np.str_)
  def load_mask(token):
    return mask_dataset(token, size)

  input_type = tff.StructType([('mask', np.str_), ('data', load_inner.type_signature.parameter)])

  @tff.federated_computation(
    process.next.type_signature.parameter[0], tff.FederatedType(input_type, tff.CLIENTS)
  )
  def next_fn(state, inputs):
    masks = tff.federated_map(load_mask, inputs.mask)
    data = tff.federated_map(load_inner, inputs.data)
    return process.next(state, tff.federated_zip((masks, data)))

  return tff.learning.templates.LearningProcess(
    process.initialize, next_fn, process.get_model_weights, process.set_model_weights
  )


def compose_loader(process, loader: tff.Computation, *, paired: bool, mask_size: int = 0):
  """`process` whose clients send `loader`'s input: plain, (parameters, data) pairs, or masked."""
  if mask_size:
    return compose_with_masks(loader, process, mask_size)
  if paired:
    return compose_with_learning_process(loader, process)
  return tff.simulation.compose_dataset_computation_with_learning_process(loader, process)


def client_inputs(specs_fn: Callable, params, seed: int, tokens_fn: Callable | None = None):
  """(round, hospitals) -> client inputs: each spec, behind its parameters and mask token.

  Args:
    specs_fn: (round, hospitals) -> the specs the loader reads, in order.
    params: The process's `ClientParams`, or None.
    seed: The run's seed (the parameters' seeds derive from it).
    tokens_fn: (round, hospitals) -> each one's mask token (secure aggregation), or None.
  """

  def inputs(round_num, hospitals):
    specs = specs_fn(round_num, hospitals)
    if params is not None:
      specs = [
        (params.value(h, position, seed, round_num), spec)
        for position, (h, spec) in enumerate(zip(hospitals, specs, strict=True))
      ]
    if tokens_fn is not None:
      specs = list(zip(tokens_fn(round_num, hospitals), specs, strict=True))
    return specs

  return inputs


def with_loader(process, params, load_train, load_pair, specs_fn: Callable, seed: int, masks=None):
  """(composed process, (round, hospitals) -> client inputs).

  Args:
    process: A learning process (from `learning.process.build`).
    params: Its `ClientParams`, or None when clients take their data alone.
    load_train: spec -> the hospital's training dataset for one round.
    load_pair: (params type element, params dataset_fn) -> a computation
      <params, data=spec> -> (params dataset, training dataset).
    specs_fn: (round, hospitals) -> the specs `load_train` reads, in order.
    seed: The run's seed (the parameters' seeds derive from it).
    masks: For a secure process, (mask size, (round, hospitals) -> each one's
      mask token); None otherwise.
  """
  loader = load_train if params is None else load_pair(params.type.element, params.dataset_fn)
  size, tokens_fn = masks or (0, None)
  composed = compose_loader(process, loader, paired=params is not None, mask_size=size)
  return composed, client_inputs(specs_fn, params, seed, tokens_fn)
