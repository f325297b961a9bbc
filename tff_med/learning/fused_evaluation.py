"""TFF's federated evaluation, computed in this process for runs on the fused engine.

`evaluation.FederatedEvaluator` calls TFF's `build_fed_eval` once per hospital
and once for their union: on a study's small test shards the calls, not the
arithmetic, set the pace (0.12 s of every 4-hospital evaluation, a fifth of
the comparison study; 11 calls with 10 hospitals). This evaluator computes the
same thing here, from TFF's own pieces in `build_fed_eval`'s order: the task's
`tff.learning.models.VariableModel`, its `forward_pass` over the test shard in
batches of `eval_batch_size`, `report_local_unfinalized_metrics` per hospital,
summed over the hospitals and finalized by the model's `metric_finalizers`
(TFF's `sum_then_finalize`). Each hospital's data passes once; the union is the
sum of the hospitals'. TFF has no in-process evaluation, so this is ours; it
is held to `FederatedEvaluator` by tests/test_fused.py (1e-6).
"""

from __future__ import annotations

import collections
import functools
import math

import numpy as np
import tensorflow as tf

from tff_med.clients import client_data
from tff_med.learning import evaluation
from tff_med.learning import task as task_lib
from tff_med.learning.build_cache import BuildCache

_MODELS = BuildCache()  # The runs of a study evaluate models of one architecture.


class _Compiled:
  """A task's model and its traced per-batch metric update (shared by runs of one architecture)."""

  def __init__(self, task):
    self.model = task_lib.variable_model(
      task.keras_model(), task.input_spec(), task.data.num_classes
    )
    self.update = tf.function(lambda batch: self.model.forward_pass(batch, training=False))
    self._finalize = _graph_finalizers(self.model)

  def unfinalized(self, weights, batches) -> collections.OrderedDict:
    """The model's unfinalized metrics over `batches`, from `weights` (TFF's client side)."""
    for variable, value in zip(self.model.trainable_variables, weights.trainable, strict=True):
      variable.assign(value)
    for variable, value in zip(
      self.model.non_trainable_variables, weights.non_trainable, strict=True
    ):
      variable.assign(value)
    self.model.reset_metrics()
    for batch in batches:
      self.update(batch)
    return tf.nest.map_structure(np.asarray, self.model.report_local_unfinalized_metrics())

  def finalized(self, unfinalized) -> dict[str, float]:
    """TFF's finalizers over (summed) unfinalized metrics."""
    return {name: float(value) for name, value in self._finalize(unfinalized).items()}


def _graph_finalizers(model):
  """`unfinalized -> {metric: value}` running the model's TFF finalizers in one graph.

  TFF's Keras finalizers are `tf.function`s that build a Keras metric in
  `tf.init_scope` each time they are traced, which TFF does once, in a graph.
  Called eagerly each would build a new Keras metric per call (a sixth of the
  robustness study in a profile), and a `tf.function` around them refuses the
  variables on its second trace; so, as TFF does, they are traced once into a
  graph of their own and run there (the same values to the bit).
  """
  structure = {
    name: [tf.TensorSpec(v.shape, v.dtype) for v in values]
    for name, values in model.report_local_unfinalized_metrics().items()
    if name != 'num_batches'
  }
  graph = tf.Graph()
  with graph.as_default():
    inputs = tf.nest.map_structure(lambda s: tf.compat.v1.placeholder(s.dtype, s.shape), structure)
    finalizers = model.metric_finalizers()
    outputs = {name: finalizers[name](inputs[name]) for name in structure}
    initialize = tf.compat.v1.global_variables_initializer()
  session = tf.compat.v1.Session(graph=graph)
  session.run(initialize)

  def finalize(unfinalized):
    values = tf.nest.flatten({name: unfinalized[name] for name in structure})
    return session.run(outputs, dict(zip(tf.nest.flatten(inputs), values, strict=True)))

  return finalize


class FusedEvaluator:
  """Evaluates model weights at every hospital and on their union, in this process.

  Same interface and results as `evaluation.FederatedEvaluator` (NaN metrics for
  absent hospitals, and then for the union; two-class metrics NaN with a note
  on a test shard with one class).

  Args:
    task: The run's task (standardized shards, model).
    batch_size: `data.eval_batch_size`.
  """

  def __init__(self, task, batch_size: int):
    self._compiled = _MODELS.get(task.architecture(), lambda: _Compiled(task))
    num_classes = task.data.num_classes
    self._batches = {
      s.hospital: [
        (
          s.x_test[i : i + batch_size],
          client_data.labels(s.y_test[i : i + batch_size], num_classes),
        )
        for i in range(0, len(s.y_test), batch_size)
      ]
      for s in task.data.shards
    }
    labels = {s.hospital: s.y_test for s in task.data.shards}
    self.notes = {h: evaluation.undefined_reason(y) for h, y in labels.items()}
    self.notes[evaluation.ALL] = evaluation.undefined_reason(np.concatenate(list(labels.values())))

  @property
  def hospitals(self) -> list[str]:
    return list(self._batches)

  def evaluate(self, model_weights, absent=()) -> dict[str, dict[str, float]]:
    """Returns {hospital or 'all': {metric: value}} for `model_weights` (as FederatedEvaluator)."""
    present = [h for h in self.hospitals if h not in absent and self.notes[h] != evaluation.EMPTY]
    sums = {h: self._compiled.unfinalized(model_weights, self._batches[h]) for h in present}
    groups = {h: [h] for h in self.hospitals if h not in absent}
    if not absent:
      groups[evaluation.ALL] = self.hospitals
    results = {}
    for name, members in groups.items():
      kept = [sums[h] for h in members if h in sums]
      results[name] = self._metrics(kept, self.notes[name])
    return evaluation.with_missing(results, self.hospitals)

  def _metrics(self, unfinalized: list, note) -> dict[str, float]:
    if not unfinalized:
      return evaluation.no_examples()
    values = self._compiled.finalized(
      tf.nest.map_structure(lambda *v: functools.reduce(np.add, v), *unfinalized)
    )
    if note:
      for metric in evaluation.TWO_CLASS_METRICS:
        values[metric] = math.nan
    return values
