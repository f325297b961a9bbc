"""Where outputs go: the one place that names every file a run or a study writes.

The training loop receives managers, never paths (as TFF's
`tff.simulation.run_training_process` and google-research/federated's
`create_managers` do). TensorBoard and CSV are TFF's own release managers;
`ProgressReleaseManager` (ours: TFF's `LoggingReleaseManager` logs raw
structures) prints the one-line-per-round progress a researcher watches.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable

import tensorflow as tf
import tensorflow_federated as tff
from tensorboard.plugins.hparams import api as hparams_api

TRAIN_PREFIX = 'train/'
EVAL_PREFIX = 'eval/'
ROUND_SECONDS = 'round_seconds'
HOSPITALS_IN_ROUND = 'deployment/hospitals_in_round'
MISSING_PREFIX = 'deployment/missing/'  # + hospital: 1 if it dropped out of the round.
CHECKPOINT_DIR = 'checkpoints'
TENSORBOARD_DIR = 'tensorboard'
METRICS_CSV = 'metrics.csv'
CONFIG_JSON = 'config.json'
RESULTS_MD = 'results.md'
RESULTS_JSON = 'results.json'
MANIFEST_JSON = 'manifest.json'  # Config, seeds, versions, shard hashes (run.manifest).
EXPORT_DIR = 'model'  # The exported Keras model and its preprocessing (run.export).

# A study's outputs (tff_med/study): each run under runs/, then tables, a summary and plots.
RUNS_DIR = 'runs'
STUDY_RESULTS_CSV = 'results.csv'
STUDY_SUMMARY_MD = 'summary.md'
HETEROGENEITY_MD = 'heterogeneity.md'
HETEROGENEITY_CSV = 'heterogeneity.csv'
FAIRNESS_CSV = 'fairness.csv'
LEARNING_CURVES_PNG = 'learning_curves.png'
PRIVACY_CSV, PRIVACY_MD, PRIVACY_PNG = 'privacy.csv', 'privacy.md', 'privacy_utility.png'
ROBUSTNESS_CSV, ROBUSTNESS_MD, ROBUSTNESS_PNG = 'robustness.csv', 'robustness.md', 'robustness.png'


def cross_site(metric: str, extension: str) -> str:
  """The cross-site matrix of `metric` ('csv' table or 'png' heatmap)."""
  return f'cross_site_{metric}.{extension}'


def by_hospital_png(metric: str) -> str:
  """The per-hospital bar chart of `metric`."""
  return f'{metric}_by_hospital.png'


def roc_png(method: str) -> str:
  """The ROC curves of `method`, one per hospital."""
  return f'roc_{method}.png'


def eval_key(hospital: str, metric: str) -> str:
  """The namespaced tag of an evaluation metric, e.g. 'eval/cleveland/auc'."""
  return f'{EVAL_PREFIX}{hospital}/{metric}'


class FiniteOnlyReleaseManager(tff.program.ReleaseManager):
  """Drops NaN scalars (undefined metrics) before releasing to TensorBoard.

  An undefined AUC is written to the CSV as NaN with its reason in the run's
  notes; TensorBoard would draw NaN as a broken point, so it is left out there.
  """

  def __init__(self, inner: tff.program.ReleaseManager):
    self._inner = inner

  async def release(self, value, key):
    finite = {k: v for k, v in value.items() if not (isinstance(v, float) and math.isnan(v))}
    await self._inner.release(finite, key)


class ProgressReleaseManager(tff.program.ReleaseManager):
  """Prints 'round i/N  seconds  train loss  latest eval AUC' for each round.

  `headline` is (metric, name) of the evaluation shown: ('auc', 'AUC') by
  default, ('cindex', 'C-index') for a survival study.
  """

  def __init__(
    self,
    total_rounds: int,
    print_fn: Callable[[str], None] = print,
    headline: tuple[str, str] = ('auc', 'AUC'),
  ):
    self._total = total_rounds
    self._print = print_fn
    self._auc_key = eval_key('all', headline[0])
    self._name = headline[1]
    self._last_auc = None

  async def release(self, value, key):
    if self._auc_key in value:
      self._last_auc = (value[self._auc_key], key)
    parts = [f'round {key}/{self._total}']
    if ROUND_SECONDS in value:
      parts.append(f'{value[ROUND_SECONDS]:6.2f}s')
    if f'{TRAIN_PREFIX}loss' in value:
      parts.append(f'train loss {value[f"{TRAIN_PREFIX}loss"]:.4f}')
    if self._last_auc is not None:
      auc, at = self._last_auc
      shown = 'missing' if math.isnan(auc) else f'{auc:.4f}'
      parts.append(f'eval {self._name} {shown} (round {at})')
    missing = [
      k[len(MISSING_PREFIX) :] for k, v in value.items() if k.startswith(MISSING_PREFIX) and v
    ]
    if missing:
      parts.append(f'missing: {", ".join(missing)}')
    self._print('  '.join(parts))


def create_managers(workdir: str, total_rounds: int, *, print_fn=print, headline=('auc', 'AUC')):
  """Returns (program state manager, release manager) writing under `workdir`.

  Layout: `checkpoints/` (TFF `FileProgramStateManager`, atomic, last 3 kept),
  `tensorboard/` (scalars), `metrics.csv` (every metric of every round).
  """
  state_manager = tff.program.FileProgramStateManager(
    os.path.join(workdir, CHECKPOINT_DIR), keep_total=3, keep_first=False
  )
  release_manager = tff.program.GroupingReleaseManager(
    [
      FiniteOnlyReleaseManager(
        tff.program.TensorBoardReleaseManager(os.path.join(workdir, TENSORBOARD_DIR))
      ),
      tff.program.CSVFileReleaseManager(os.path.join(workdir, METRICS_CSV)),
      ProgressReleaseManager(total_rounds, print_fn, headline),
    ]
  )
  return state_manager, release_manager


def flat_hparams(config_dict: dict, prefix: str = '') -> dict:
  """Flattens a nested config to TensorBoard-hparams-compatible scalars."""
  flat = {}
  for key, value in config_dict.items():
    name = f'{prefix}{key}'
    if isinstance(value, dict):
      flat.update(flat_hparams(value, f'{name}.'))
    elif isinstance(value, (bool, int, float, str)):
      flat[name] = value
    else:
      flat[name] = str(value)
  return flat


def write_config(workdir: str, config_dict: dict) -> None:
  """Writes the locked config as JSON and as TensorBoard hparams."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, CONFIG_JSON), 'w') as f:
    json.dump(config_dict, f, indent=2, sort_keys=True, default=str)
  writer = tf.summary.create_file_writer(os.path.join(workdir, TENSORBOARD_DIR))
  with writer.as_default():
    hparams_api.hparams(flat_hparams(config_dict))
  writer.close()
