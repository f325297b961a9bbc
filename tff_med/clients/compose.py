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


def with_loader(process, params, load_train, load_pair, specs_fn: Callable, seed: int):
  """(composed process, (round, hospitals) -> client inputs).

  Args:
    process: A learning process (from `learning.process.build`).
    params: Its `ClientParams`, or None when clients take their data alone.
    load_train: spec -> the hospital's training dataset for one round.
    load_pair: (params type element, params dataset_fn) -> a computation
      <params, data=spec> -> (params dataset, training dataset).
    specs_fn: (round, hospitals) -> the specs `load_train` reads, in order.
    seed: The run's seed (the parameters' seeds derive from it).
  """
  if params is None:
    composed = tff.simulation.compose_dataset_computation_with_learning_process(load_train, process)
    return composed, specs_fn
  composed = compose_with_learning_process(
    load_pair(params.type.element, params.dataset_fn), process
  )

  def inputs_fn(round_num, hospitals):
    specs = specs_fn(round_num, hospitals)
    return [
      (params.value(h, position, seed, round_num), spec)
      for position, (h, spec) in enumerate(zip(hospitals, specs, strict=True))
    ]

  return composed, inputs_fn
