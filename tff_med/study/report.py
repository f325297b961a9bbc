"""The study's written outputs: results.csv, summary.md, cross-site matrix, fairness.

Undefined metrics stay NaN in the CSV with their reason in `undefined`, and are
left out of means (a mean over hospitals says over how many it was taken).
"""

from __future__ import annotations

import csv
import math
import os

import numpy as np
import tensorflow as tf

from tff_med.run import outputs
from tff_med.study import heterogeneity, plots

METRICS = ('auc', 'pr_auc', 'accuracy', 'sensitivity', 'specificity', 'brier', 'ece')
# FLamby's published Fed-Heart-Disease accuracy, mean over the four test sets
# (du Terrail et al., 2022, Table/Figure of benchmark results).
FLAMBY_ACCURACY = {
  'pooled': 0.735,
  'fedyogi': 0.731,
  'fedadagrad': 0.731,
  'fedadam': 0.726,
  'fedavg': 0.685,
  'fedprox': 0.685,
  'local': '0.567 to 0.722',
}


def result_row(method, trained_at, seed, test_set, evaluation, note='') -> dict:
  """One row of results.csv: a model (method, seed) on one test set."""
  row = {
    'method': method,
    'trained_at': trained_at,
    'seed': seed,
    'test_set': test_set,
    'n': evaluation.n,
    'prevalence': evaluation.prevalence,
  }
  row.update(evaluation.metrics)
  for name, (low, high) in evaluation.ci.items():
    row[f'{name}_ci_low'], row[f'{name}_ci_high'] = low, high
  row['undefined'] = '; '.join(f'{k}: {v}' for k, v in evaluation.undefined.items())
  row['note'] = note
  return row


def read_curve(metrics_csv: str, key: str) -> list[tuple[int, float]]:
  """(round, value) pairs of one metric from a run's metrics.csv."""
  with open(metrics_csv) as f:
    return [(int(r['key']), float(r[key])) for r in csv.DictReader(f) if r.get(key)]


def mean_sd(values) -> tuple[float, float, int]:
  values = [v for v in values if not math.isnan(v)]
  if not values:
    return math.nan, math.nan, 0
  return (
    float(np.mean(values)),
    float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
    len(values),
  )


def fmt(mean, sd=None):
  if math.isnan(mean):
    return 'undefined'
  return f'{mean:.3f}' if sd is None else f'{mean:.3f} ± {sd:.3f}'


def per_method(rows, hospitals, metric) -> dict:
  """{method: {test_set or 'mean': (mean over seeds, sd, n)}}; 'mean' is over hospitals."""
  out = {}
  for method in dict.fromkeys(r['method'] for r in rows):
    mine = [r for r in rows if r['method'] == method]
    seeds = sorted({r['seed'] for r in mine})
    entry = {
      t: mean_sd([r[metric] for r in mine if r['test_set'] == t]) for t in hospitals + ['all']
    }
    per_seed = [
      np.nanmean(
        [r[metric] for r in mine if r['seed'] == s and r['test_set'] in hospitals] or [math.nan]
      )
      for s in seeds
    ]
    entry['mean'] = mean_sd(per_seed)
    out[method] = entry
  return out


def table(rows, hospitals, metric, flamby=None):
  """Mean ± sd over seeds per method and test set; `flamby` adds FLamby's published figure."""
  stats = per_method(rows, hospitals, metric)
  head = ['method', *hospitals, 'all (union)', 'mean over hospitals']
  head += ['FLamby (published)'] if flamby else []
  lines = ['| ' + ' | '.join(head) + ' |', '|---|' + '---:|' * (len(head) - 1)]
  for method, entry in stats.items():
    cells = [
      fmt(m, sd if n > 1 else None) for m, sd, n in (entry[t] for t in hospitals + ['all', 'mean'])
    ]
    if flamby:
      key = 'local' if method.startswith('local_') else method
      cells.append(str(flamby.get(key, '')))
    lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def fairness(rows, hospitals, metric='accuracy') -> list[dict]:
  """Per method: worst hospital, its value, and the spread across hospitals."""
  out = []
  for method, entry in per_method(rows, hospitals, metric).items():
    values = {h: entry[h][0] for h in hospitals if not math.isnan(entry[h][0])}
    if values:
      worst = min(values, key=values.get)
      out.append(
        {
          'method': method,
          'worst_hospital': worst,
          'worst': values[worst],
          'spread': max(values.values()) - values[worst],
          'sd_across_hospitals': float(np.std(list(values.values()))),
        }
      )
  return out


def fairness_table(fair: list[dict], metric_name: str) -> str:
  """Markdown of `fairness` rows: each method's worst hospital and the spread."""
  lines = [
    f'| method | worst hospital | its {metric_name} | spread (best - worst) |',
    '|---|---|---:|---:|',
  ]
  lines += [
    f'| {f["method"]} | {f["worst_hospital"]} | {f["worst"]:.3f} | {f["spread"]:.3f} |'
    for f in fair
  ]
  return '\n'.join(lines)


def cross_site_matrix(rows, hospitals, metric='accuracy') -> dict:
  """{trained where (method): {tested where: mean over seeds}}."""
  return {
    m: {t: e[t][0] for t in hospitals + ['all']}
    for m, e in per_method(rows, hospitals, metric).items()
  }


def write_study(workdir: str, *, table: str, rows: list[dict], summary: str, lines, plot: str, fig):
  """Writes a study's per-run table (CSV), its summary (Markdown lines) and its figure."""
  write_csv(os.path.join(workdir, table), rows)
  plots.save(fig, os.path.join(workdir, plot))
  with open(os.path.join(workdir, summary), 'w') as f:
    f.write('\n'.join(lines) + '\n')


def write_csv(path, rows):
  """Writes `rows` (dicts) as CSV; the columns are every key, in first-seen order."""
  fields = list(dict.fromkeys(k for r in rows for k in r))
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fields)
    writer.writeheader()
    writer.writerows(rows)


def write_tensorboard(directory: str, evaluations: dict) -> None:
  """Final test metrics of a non-federated model, as scalars 'eval/<test set>/<metric>'."""
  writer = tf.summary.create_file_writer(directory)
  with writer.as_default():
    for test_set, e in evaluations.items():
      for metric, value in e.metrics.items():
        if not math.isnan(value):
          tf.summary.scalar(f'eval/{test_set}/{metric}', value, step=0)
  writer.close()


def write_heterogeneity(workdir, summaries, feature_names) -> None:
  """heterogeneity.md / .csv and a TensorBoard text summary, before any training."""
  os.makedirs(workdir, exist_ok=True)
  text = heterogeneity.to_markdown(summaries, feature_names)
  with open(os.path.join(workdir, outputs.HETEROGENEITY_MD), 'w') as f:
    f.write('# Hospitals before training\n\n' + text + '\n')
  write_csv(
    os.path.join(workdir, outputs.HETEROGENEITY_CSV),
    heterogeneity.to_rows(summaries, feature_names),
  )
  writer = tf.summary.create_file_writer(os.path.join(workdir, outputs.RUNS_DIR, 'heterogeneity'))
  with writer.as_default():
    tf.summary.text('heterogeneity', text, step=0)
  writer.close()


def write_report(workdir, rows, curves, hospitals, predictions) -> str:
  """Writes results.csv, cross-site matrices, fairness, plots and summary.md.

  Args:
    workdir: The study directory.
    rows: `result_row`s of every method, seed and test set.
    curves: {federated method: [per-seed [(round, eval/all/auc)]]}.
    hospitals: Hospital ids, in report order.
    predictions: {federated method: {hospital: (labels, risks)}} of seed 0, for ROC curves.

  Returns:
    The summary's markdown.
  """
  write_csv(os.path.join(workdir, outputs.STUDY_RESULTS_CSV), rows)
  for metric in ('accuracy', 'auc'):
    matrix = cross_site_matrix(rows, hospitals, metric)
    write_csv(
      os.path.join(workdir, outputs.cross_site(metric, 'csv')),
      [{'trained': m, **values} for m, values in matrix.items()],
    )
    plots.heatmap(matrix, metric, os.path.join(workdir, outputs.cross_site(metric, 'png')))
  fair = fairness(rows, hospitals)
  write_csv(os.path.join(workdir, outputs.FAIRNESS_CSV), fair)
  plots.bars(
    per_method(rows, hospitals, 'accuracy'),
    hospitals,
    os.path.join(workdir, outputs.by_hospital_png('accuracy')),
  )
  plots.learning_curves(curves, os.path.join(workdir, outputs.LEARNING_CURVES_PNG))
  best = _best_federated(rows, hospitals)
  if best:
    plots.roc_by_hospital(predictions[best], best, os.path.join(workdir, outputs.roc_png(best)))
  seeds = len({r['seed'] for r in rows})
  summary = '\n\n'.join(
    [
      f'# Local vs pooled vs federated ({seeds} seed{"s" if seeds > 1 else ""})',
      'Accuracy at threshold 0.5, mean ± sd over seeds. "mean over hospitals" averages the '
      'hospitals\' test sets (FLamby\'s figure); "pooled" needs all records in one place, '
      'which privacy forbids: it is an upper bound, not an option.',
      table(rows, hospitals, 'accuracy', FLAMBY_ACCURACY),
      '## AUC-ROC (undefined where a test set has one class)',
      table(rows, hospitals, 'auc'),
      f'## Clinical metrics of the best federated method, {best} (seed 0, threshold 0.5)',
      clinical_table(rows, best) if best else 'No federated method in this study.',
      '## Fairness across hospitals (accuracy)',
      fairness_table(fair, 'accuracy'),
      'Per-row metrics (AUC, PR-AUC, sensitivity, specificity, Brier, ECE, bootstrap 95% CIs) '
      'are in results.csv; plots and cross-site matrices beside this file.',
    ]
  )
  with open(os.path.join(workdir, outputs.STUDY_SUMMARY_MD), 'w') as f:
    f.write(summary + '\n')
  return summary


def clinical_table(rows, method, seed=0) -> str:
  """Every clinical metric of one model per test set, with bootstrap 95% CIs."""
  head = (
    '| test set | n | prevalence | AUC-ROC [95% CI] | sensitivity [95% CI] | '
    'specificity [95% CI] | PR-AUC | accuracy | Brier | ECE |'
  )
  lines = [head, '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
  for r in rows:
    if r['method'] != method or r['seed'] != seed:
      continue
    with_ci = [
      'undefined'
      if math.isnan(r[m])
      else f'{r[m]:.3f} [{r[m + "_ci_low"]:.3f}, {r[m + "_ci_high"]:.3f}]'
      for m in ('auc', 'sensitivity', 'specificity')
    ]
    plain = [fmt(r[m]) for m in ('pr_auc', 'accuracy', 'brier', 'ece')]
    lines.append(
      f'| {r["test_set"]} | {r["n"]} | {r["prevalence"]:.2f} | '
      + ' | '.join(with_ci + plain)
      + ' |'
    )
  return '\n'.join(lines)


def _best_federated(rows, hospitals):
  federated = [r for r in rows if r['trained_at'] == 'federation']
  if not federated:
    return None
  stats = per_method(federated, hospitals, 'accuracy')
  return max(stats, key=lambda m: stats[m]['mean'][0])
