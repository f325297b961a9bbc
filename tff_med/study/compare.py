"""Runs the comparison study: local, pooled, federated and fine-tuned models over seeds.

Follows FLamby's benchmark protocol (du Terrail et al., 2022): same model,
same batch size and same number of samples for every method. Federated runs
are ordinary `experiment.train` runs (TFF learning processes, one TensorBoard
run each); local and pooled baselines are plain Keras (see `centralized`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os

import numpy as np
import tensorflow as tf

from tff_med import experiment, runtime
from tff_med.errors import ConfigError, unknown_name_error
from tff_med.learning import algorithms
from tff_med.learning import task as task_lib
from tff_med.run import export, outputs, results, settings
from tff_med.study import (
  centralized,
  clinical_metrics,
  heterogeneity,
  provenance,
  report,
  shared_worker,
  survival_report,
)
from tff_med.survival import evaluation as survival_evaluation

LOCAL, POOLED, FINETUNE = 'local', 'pooled', '+finetune'
ALL = 'all'


def valid_methods() -> list[str]:
  """Every method name a study accepts."""
  names = sorted(algorithms.ALGORITHMS)
  return [LOCAL, POOLED] + names + [f'{n}{FINETUNE}' for n in names]


def validate(config) -> None:
  """Checks the study block before any training."""
  unknown = [m for m in config.study.methods if m not in valid_methods()]
  if unknown:
    raise ConfigError(f'Unknown methods {unknown}; valid methods are: {", ".join(valid_methods())}')
  centralized_methods = [m for m in config.study.methods if m in (LOCAL, POOLED) or FINETUNE in m]
  optimizer = config.algorithm.client_optimizer
  if centralized_methods and optimizer not in centralized.KERAS_OPTIMIZERS:
    raise ConfigError(
      f'{centralized_methods} train in plain Keras, which has no {optimizer!r} '
      f'optimizer here; valid: {", ".join(sorted(centralized.KERAS_OPTIMIZERS))}'
    )
  if config.study.seeds < 1:
    raise ConfigError(f'study.seeds must be >= 1, got {config.study.seeds}')
  for algorithm, fields in config.study.get('algorithm_overrides', {}).items():
    if algorithm not in algorithms.ALGORITHMS:
      raise unknown_name_error(
        'algorithm in study.algorithm_overrides', algorithm, algorithms.ALGORITHMS
      )
    unknown = [f for f in fields if f not in config.algorithm]
    if unknown:
      raise ConfigError(
        f'study.algorithm_overrides.{algorithm} sets unknown algorithm fields {unknown}'
      )
    resolved = config.algorithm.copy_and_resolve_references()
    resolved.update(dict(fields))
    algorithms.validate(resolved)
  settings.validate_training(config)


@dataclasses.dataclass
class StudyResult:
  """A finished study: every result row, the learning curves and the summary."""

  rows: list[dict]
  curves: dict
  workdir: str
  summary: str


def _evaluate_everywhere(model, task, seed, bootstrap) -> dict:
  """Clinical metrics of a Keras `model` on each hospital's test shard and their union.

  In this simulation the predictions are made in-process; in a deployment each
  hospital would score its own test shard.
  """
  preds = {
    s.hospital: (s.y_test, centralized.predict_risk(model, s.x_test)) for s in task.data.shards
  }
  preds[ALL] = tuple(np.concatenate(parts) for parts in zip(*preds.values(), strict=True))
  evaluate = _evaluate_fn(task.data, model)
  return {h: evaluate(y, p, seed=seed, samples=bootstrap) for h, (y, p) in preds.items()}


def _evaluate_fn(data, model):
  """The study's metrics of one test set: clinical metrics, or a survival study's C-index and
  calibration (the model's baseline survival from every hospital's training rows; none
  without a model)."""
  if not data.survival:
    return clinical_metrics.evaluate
  if model is None:
    return clinical_metrics.evaluate_survival
  x = np.concatenate([s.x_train for s in data.shards])
  y = np.concatenate([s.y_train for s in data.shards])
  base = survival_evaluation.baseline_survival(
    y, centralized.predict_risk(model, x).astype(np.float64), survival_evaluation.HORIZONS
  )
  return functools.partial(clinical_metrics.evaluate_survival, base=base)


def _rows(method, trained_at, seed, evaluations, note='', tensorboard_dir=None):
  if tensorboard_dir:  # Federated runs have their own per-round TensorBoard run.
    report.write_tensorboard(
      os.path.join(tensorboard_dir, outputs.RUNS_DIR, method, f'seed_{seed}', 'tensorboard'),
      evaluations,
    )
  return [
    report.result_row(method, trained_at, seed, test_set, e, note)
    for test_set, e in evaluations.items()
  ]


def _centralized(task, config, x, y, steps, seed, model=None):
  model = model or task.keras_model()
  a = config.algorithm
  return centralized.train_steps(
    model,
    x,
    y,
    steps=steps,
    batch_size=config.data.batch_size,
    optimizer=a.client_optimizer,
    learning_rate=a.client_learning_rate,
    momentum=a.client_momentum,
    num_classes=task.data.num_classes,
    seed=seed,
  )


def _one_class_note(y):
  if y.ndim == 2:  # Survival: every training shard has an event (checked when read).
    return ''
  classes = np.unique(y)
  return f'trained on one class only ({int(classes[0])})' if len(classes) < 2 else ''


def _run_seed(config, raw, seed, workdir, print_fn):
  study = config.study
  with runtime.local_runtime():
    task = task_lib.create_task(
      raw, model_config=config.model.to_dict(), scaling_mode=config.data.scaling, seed=seed
    )
  h_count = len(task.data.shards)
  steps = study.centralized_steps or config.training.rounds * config.data.local_steps * h_count
  bootstrap = study.bootstrap_samples
  rows, curves, federated, predictions = [], {}, {}, {}
  for method in study.methods:
    if method == LOCAL:
      for s in task.data.shards:
        model = _centralized(task, config, s.x_train, s.y_train, steps, seed)
        rows += _rows(
          f'local_{s.hospital}',
          s.hospital,
          seed,
          _evaluate_everywhere(model, task, seed, bootstrap),
          _one_class_note(s.y_train),
          workdir,
        )
    elif method == POOLED:
      x = np.concatenate([s.x_train for s in task.data.shards])
      y = np.concatenate([s.y_train for s in task.data.shards])
      model = _centralized(task, config, x, y, steps, seed)
      rows += _rows(
        POOLED,
        'pooled (upper bound; privacy forbids it)',
        seed,
        _evaluate_everywhere(model, task, seed, bootstrap),
        '',
        workdir,
      )
    else:
      base = method.removesuffix(FINETUNE)
      if base not in federated:
        federated[base], curves[base] = _federated(
          config, base, seed, workdir, print_fn, results.task_kind(task.data)
        )
      if method == base:
        rows += _rows(
          base,
          'federation',
          seed,
          _evaluate_everywhere(federated[base], task, seed, bootstrap),
        )
        predictions[base] = {
          s.hospital: (s.y_test, centralized.predict_risk(federated[base], s.x_test))
          for s in task.data.shards
        }
      else:
        rows += _finetuned(config, task, federated[base], method, seed, bootstrap, workdir)
  return rows, curves, predictions


def _federated(config, algorithm, seed, workdir, print_fn, kind):
  run_config = config.copy_and_resolve_references()
  with run_config.unlocked():
    del run_config['study']
  run_config.algorithm.name = algorithm
  # FLamby tunes learning rates per strategy; a study may too (the config says which).
  run_config.algorithm.update(dict(config.study.get('algorithm_overrides', {}).get(algorithm, {})))
  run_config.seed = seed
  run_dir = os.path.join(workdir, outputs.RUNS_DIR, algorithm, f'seed_{seed}')
  print_fn(f'seed {seed}: {algorithm} ...')
  experiment.train(run_config, run_dir, print_fn=lambda _: None)
  model, _ = export.load_exported(run_dir)
  key = outputs.eval_key(ALL, results.HEADLINE[kind][0])  # What its progress line showed.
  return model, report.read_curve(os.path.join(run_dir, outputs.METRICS_CSV), key)


def _finetuned(config, task, model, method, seed, bootstrap, workdir):
  parts = {}
  for s in task.data.shards:
    tuned = tf.keras.models.clone_model(model)
    tuned.set_weights(model.get_weights())
    steps = config.study.finetune_epochs * math.ceil(len(s.y_train) / config.data.batch_size)
    _centralized(task, config, s.x_train, s.y_train, steps, seed, model=tuned)
    parts[s.hospital] = (s.y_test, centralized.predict_risk(tuned, s.x_test), tuned)
  # Each personalised model is tested only at its own hospital.
  evaluations = {
    h: _evaluate_fn(task.data, tuned)(y, p, seed=seed, samples=bootstrap)
    for h, (y, p, tuned) in parts.items()
  }
  y_all, p_all = (np.concatenate(v) for v in list(zip(*parts.values(), strict=True))[:2])
  # The union mixes each hospital's own model: no single baseline, so no calibration view.
  evaluations[ALL] = _evaluate_fn(task.data, None)(y_all, p_all, seed=seed, samples=bootstrap)
  return _rows(method, 'each hospital', seed, evaluations, 'tested at its own hospital', workdir)


@shared_worker.one_worker_per_study
def run_study(config, workdir: str, *, print_fn=print) -> StudyResult:
  """Runs every method for every seed and writes the report under `workdir`.

  Raises:
    ConfigError, ShardError: Bad methods, seeds or shards, before any training.
  """
  validate(config)
  with runtime.local_runtime():
    raw = task_lib.load_shards(config.data)
    summaries = heterogeneity.hospital_summaries(raw)
  seeds = list(range(config.study.seeds))
  provenance.write_study_manifest(workdir, config, seeds, [f for s in raw.shards for f in s.files])
  report.write_heterogeneity(workdir, summaries, raw.feature_names)
  rows, curves, first_predictions = [], {}, None
  for seed in seeds:
    seed_rows, seed_curves, predictions = _run_seed(config, raw, seed, workdir, print_fn)
    first_predictions = first_predictions or predictions
    rows += seed_rows
    for method, curve in seed_curves.items():
      curves.setdefault(method, []).append(curve)
    print_fn(f'seed {seed} done: {len(seed_rows)} result rows')
  if raw.survival:
    summary = survival_report.write_report(workdir, rows, curves, raw.hospitals)
  else:
    summary = report.write_report(workdir, rows, curves, raw.hospitals, first_predictions)
  summary += '\n' + provenance.record_engines(workdir, outputs.STUDY_SUMMARY_MD) + '.'
  print_fn(summary)
  return StudyResult(rows, curves, workdir, summary)
