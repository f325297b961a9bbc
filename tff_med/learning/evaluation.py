"""Federated evaluation of the global model at each hospital and on their union.

Uses TFF's `build_fed_eval`: the model is broadcast, each hospital evaluates on
its own test shard, and only metric sums come back. One call per hospital gives
per-hospital metrics; one call over all hospitals gives the union's (AUC over
the pooled predictions, since TFF sums the AUC confusion counts).

A metric that needs two classes (AUC) is undefined on a test shard with one
class or none: it is reported as NaN with a note, never as 0 or 1.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import tensorflow_federated as tff

from tff_med import runtime  # noqa: F401  (installs the owned TFF context these calls run in)
from tff_med.errors import HospitalsUnavailable
from tff_med.learning.build_cache import BuildCache

ALL = 'all'
TWO_CLASS_METRICS = ('auc',)
EMPTY = 'test shard is empty'


def no_examples() -> dict[str, float]:
  """The metrics of an evaluation over no test rows: missing (NaN), 0 examples."""
  return {'loss': math.nan, 'accuracy': math.nan, 'auc': math.nan, 'num_examples': 0}


_PROCESSES = BuildCache()  # The runs of a study evaluate the same model on the same layout.


def undefined_reason(labels: np.ndarray) -> str | None:
  """Why two-class metrics are undefined on a test set with these labels, or None."""
  present = np.unique(labels)
  if len(labels) == 0:
    return EMPTY
  if len(present) < 2:
    return f'test shard has only class {int(present[0])}'
  return None


def undefined_reason_from_counts(counts) -> str | None:
  """`undefined_reason` from a histogram of test labels (what a remote hospital reports).

  A negative count is a small count the hospital suppressed: the class is present.
  """
  counts = np.asarray(counts)
  if np.abs(counts).sum() == 0:
    return EMPTY
  present = np.flatnonzero(counts)
  if len(present) < 2:
    return f'test shard has only class {int(present[0])}'
  return None


class FederatedEvaluator:
  """Evaluates model weights at every hospital; the TFF process is built once.

  Args:
    process: A `build_fed_eval` process (composed with a loader for remote shards).
    client_inputs: {hospital: its test dataset, or the string its worker loads}.
    notes: {hospital or 'all': why two-class metrics are undefined, or None}.
    route: hospitals -> context manager running the enclosed calls on their
      workers (remote deployments); by default calls run in the current context.
  """

  def __init__(self, process, client_inputs: dict, notes: dict, route=None):
    self._process = process
    self._route = route or (lambda hospitals: contextlib.nullcontext())
    with self._route(list(client_inputs)):
      self._state = self._process.initialize()
    self._datasets = dict(client_inputs)
    self.notes = notes

  @classmethod
  def resident(cls, task, shards, batch_size: int = 256) -> FederatedEvaluator:
    """An evaluator of `task`'s model over test shards the local worker reads
    (`clients.resident.ResidentShards`); built once per model architecture and layout."""
    process = _PROCESSES.get(
      (task.architecture(), shards.layout, batch_size),
      lambda: tff.simulation.compose_dataset_computation_with_learning_process(
        shards.test_computation(batch_size),
        tff.learning.algorithms.build_fed_eval(
          task.model_fn(), loop_implementation=tff.learning.LoopImplementation.DATASET_ITERATOR
        ),
      ),
    )
    notes = {h: undefined_reason(y) for h, y in shards.test_labels.items()}
    notes[ALL] = undefined_reason(np.concatenate(list(shards.test_labels.values())))
    return cls(process, shards.test_inputs(), notes)

  @property
  def hospitals(self) -> list[str]:
    return list(self._datasets)

  def evaluate(self, model_weights, absent=()) -> dict[str, dict[str, float]]:
    """Returns {hospital or 'all': {metric: value}} for `model_weights`.

    A hospital in `absent`, or whose worker fails during the call, has missing
    metrics (NaN), and so has the union: never a value from fewer hospitals.
    """
    state = self._process.set_model_weights(self._state, model_weights)
    results = {}
    for name in self.hospitals + [ALL]:
      clients = self.hospitals if name == ALL else [name]
      if set(clients) & set(absent):
        continue
      non_empty = [h for h in clients if self.notes[h] != EMPTY]
      try:
        with self._route(non_empty):
          results[name] = self._metrics(
            state, [self._datasets[h] for h in non_empty], self.notes[name]
          )
      except HospitalsUnavailable as e:
        absent = {*absent, *e.hospitals}
    return with_missing(results, self.hospitals)

  def _metrics(self, state, datasets, note) -> dict[str, float]:
    if not datasets:
      return no_examples()
    output = self._process.next(state, datasets)
    raw = output.metrics['client_work']['eval']['current_round_metrics']
    values = {k: float(v) for k, v in raw.items() if k != 'num_batches'}
    if note:
      for metric in TWO_CLASS_METRICS:
        values[metric] = math.nan
    return values


def with_missing(results: dict, hospitals: list[str]) -> dict[str, dict[str, float]]:
  """`results` with NaN metrics (0 examples) for every hospital, or the union, it lacks."""
  names = next(iter(results.values()), {'loss': 0, 'num_examples': 0})
  missing = {m: 0 if m == 'num_examples' else math.nan for m in names}
  return {name: results.get(name, dict(missing)) for name in [*hospitals, ALL]}


def mean_over_hospitals(results: dict[str, dict[str, float]], metric: str) -> float:
  """Mean of `metric` over hospitals where it is defined (NaN if nowhere)."""
  values = [v[metric] for h, v in results.items() if h != ALL and not math.isnan(v[metric])]
  return float(np.mean(values)) if values else math.nan
