"""The written outputs of a survival comparison study: results.csv, summary.md, matrices, plots.

The same row format and tables as the classification study (`study.report`),
with Harrell's C-index in place of accuracy and AUC, next to FLamby's published
Fed-TCGA-BRCA figures.
"""

from __future__ import annotations

import math
import os

from tff_med.run import outputs
from tff_med.study import plots, report

# FLamby's published Fed-TCGA-BRCA C-index, 5 seeds: on the pooled test set, and the
# mean over the six regions' test sets (flamby/results/results_benchmark_fed_tcga_brca).
FLAMBY_CINDEX = {
  'pooled': '0.704 ± 0.114 / 0.676',
  'fedavg': '0.735 ± 0.175 / 0.732',
  'fedprox': '0.717 ± 0.162 / 0.729',
  'fedadam': '0.842 ± 0.017 / 0.815',
  'fedyogi': '0.842 ± 0.017 / 0.815',
  'fedadagrad': '0.834 ± 0.007 / 0.813',
  'local': '0.565 to 0.728 / 0.498 to 0.750',
}


def calibration_table(rows: list[dict]) -> str:
  """Mean predicted survival against the Kaplan–Meier estimate at each horizon, per method."""
  columns = sorted(
    {k for r in rows for k in r if k.startswith('predicted_survival_at_')},
    key=lambda k: float(k.rsplit('_', 1)[1]),
  )
  horizons = [c.rsplit('_', 1)[1] for c in columns]
  lines = [
    '| method | ' + ' | '.join(f'at {h}: predicted / Kaplan–Meier' for h in horizons) + ' |',
    '|---|' + '---:|' * len(horizons),
  ]
  union = [r for r in rows if r['test_set'] == 'all']
  for method in dict.fromkeys(r['method'] for r in union):
    cells = []
    for h in horizons:
      mine = [r for r in union if r['method'] == method]
      predicted = report.mean_sd([r.get(f'predicted_survival_at_{h}', math.nan) for r in mine])[0]
      observed = report.mean_sd([r.get(f'km_survival_at_{h}', math.nan) for r in mine])[0]
      cells.append(f'{report.fmt(predicted)} / {report.fmt(observed)}')
    lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def write_report(workdir: str, rows: list[dict], curves: dict, hospitals: list[str]) -> str:
  """Writes results.csv, the cross-site C-index matrix, fairness, plots and summary.md.

  Returns:
    The summary's markdown.
  """
  report.write_csv(os.path.join(workdir, outputs.STUDY_RESULTS_CSV), rows)
  matrix = report.cross_site_matrix(rows, hospitals, 'cindex')
  report.write_csv(
    os.path.join(workdir, outputs.cross_site('cindex', 'csv')),
    [{'trained': m, **values} for m, values in matrix.items()],
  )
  plots.heatmap(matrix, 'C-index', os.path.join(workdir, outputs.cross_site('cindex', 'png')))
  fair = report.fairness(rows, hospitals, 'cindex')
  report.write_csv(os.path.join(workdir, outputs.FAIRNESS_CSV), fair)
  stats = report.per_method(rows, hospitals, 'cindex')
  plots.bars(stats, hospitals, os.path.join(workdir, outputs.by_hospital_png('cindex')), 'C-index')
  plots.learning_curves(curves, os.path.join(workdir, outputs.LEARNING_CURVES_PNG), 'C-index')
  seeds = len({r['seed'] for r in rows})
  summary = '\n\n'.join(
    [
      f'# Local vs pooled vs federated survival models ({seeds} seed{"s" if seeds > 1 else ""})',
      'Harrell\'s C-index, mean ± sd over seeds. "all (union)" is the pooled test set (FLamby\'s '
      'steadier figure), "mean over hospitals" averages the hospitals\' test sets; FLamby\'s '
      'published figures are given as pooled test / mean over regions. A test set without an '
      'observed event has no C-index (undefined, never 0.5). "pooled" needs all records in '
      'one place, which privacy forbids: it is an upper bound, not an option.',
      report.table(rows, hospitals, 'cindex', FLAMBY_CINDEX),
      '## Calibration on the union of test sets (mean over seeds)',
      calibration_table(rows),
      '## Fairness across hospitals (C-index)',
      report.fairness_table(fair, 'C-index'),
      'Per-row C-index with bootstrap 95% CIs is in results.csv; plots and the cross-site '
      'matrix beside this file.',
    ]
  )
  with open(os.path.join(workdir, outputs.STUDY_SUMMARY_MD), 'w') as f:
    f.write(summary + '\n')
  return summary
