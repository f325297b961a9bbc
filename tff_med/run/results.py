"""A finished run's results: the per-hospital table, results.md and .json, the exported model.

Shared by every route a run takes (simulated, fused, remote hospitals). The
table's columns follow the task: loss, accuracy and AUC-ROC for classes; the
Cox loss and the C-index for survival.
"""

from __future__ import annotations

import json
import math
import os

from absl import logging

from tff_med.learning import evaluation
from tff_med.run import export, outputs
from tff_med.run.loop import LoopResult

# Columns of the results table: (metric, heading, format); the first is not averaged.
TABLE_COLUMNS = {
  'classification': (
    ('loss', 'loss', '.4f'),
    ('accuracy', 'accuracy', '.3f'),
    ('auc', 'AUC-ROC', '.3f'),
  ),
  'survival': (('loss', 'Cox loss', '.4f'), ('cindex', 'C-index', '.3f')),
}
# The metric a progress line shows and notes speak of: (key, name).
HEADLINE = {'classification': ('auc', 'AUC'), 'survival': ('cindex', 'C-index')}


def task_kind(data) -> str:
  """'survival' for shards with a time column, else 'classification'.

  A remote federation's schema has no `survival`: remote runs are classification
  (`run.settings.validate_training` refuses remote survival studies).
  """
  return 'survival' if getattr(data, 'survival', False) else 'classification'


def results_table(
  results: dict, test_sizes: dict, notes: dict, kind: str = 'classification'
) -> str:
  """A markdown table of the final per-hospital metrics."""
  columns = TABLE_COLUMNS[kind]
  lines = [
    '| test set | n | ' + ' | '.join(c[1] for c in columns) + ' |',
    '|---|---:|' + '---:|' * len(columns),
  ]

  def cell(value, fmt):
    return 'undefined' if math.isnan(value) else format(value, fmt)

  for name, m in results.items():
    cells = [
      cell(m[metric], fmt) if metric != 'loss' else format(m[metric], fmt)
      for metric, _, fmt in columns
    ]
    lines.append(f'| {name} | {test_sizes[name]} | ' + ' | '.join(cells) + ' |')
  means = [
    format(evaluation.mean_over_hospitals(results, metric), fmt) for metric, _, fmt in columns[1:]
  ]
  lines.append('| mean over hospitals | | | ' + ' | '.join(means) + ' |')
  for name, note in notes.items():
    if note:
      lines.append(f'\n{name}: {HEADLINE[kind][1]} undefined ({note}).')
  return '\n'.join(lines)


def finish_run(
  workdir,
  loop,
  keras_model,
  schema,
  standardizer,
  test_sizes,
  notes,
  privacy_summary,
  participation,
  engine,
  *,
  print_fn,
) -> str:
  """Exports the model, writes results.md/.json, prints the table; returns the table.

  `schema` is anything with `feature_names`, `label` and `num_classes` (the
  shards, or a remote federation's schema); `participation` is
  `Attendance.summary()` (who took part in which round); `engine` what ran the rounds.
  """
  kind = task_kind(schema)
  export.export_model(
    workdir,
    keras_model,
    feature_names=schema.feature_names,
    label=schema.label,
    num_classes=schema.num_classes,
    standardizer=standardizer,
  )
  table = results_table(loop.final_eval, test_sizes, notes, kind)
  table += participation_lines(participation)
  if privacy_summary['level'] != 'none':
    table += '\n\n' + privacy_table(privacy_summary)
  _write_results(workdir, loop, table, notes, privacy_summary, participation, engine)
  print_fn(f'Stopped: {loop.stop_reason}.')
  print_fn(table)
  return table


def participation_lines(participation: dict) -> str:
  """Notes on the rounds each hospital missed, and who was out of the final evaluation."""
  lines = [
    f'\n{h} missed rounds {", ".join(map(str, rounds))} (dropped out).'
    for h, rounds in participation['rounds_missed'].items()
    if rounds
  ]
  absent = participation['absent_at_final_evaluation']
  if absent:
    lines.append(f'\nOut of the final evaluation (metrics missing): {", ".join(absent)}.')
  return ''.join(lines)


def privacy_table(summary: dict) -> str:
  """A markdown table of the epsilon each protected group spent, by both accountants."""
  lines = [
    f'Privacy ({summary["level"]} level, delta {summary["delta"]:g}):',
    '',
    '| protected group | noise multiplier | steps | epsilon (RDP) | epsilon (PLD) |',
    '|---|---:|---:|---:|---:|',
  ]
  for group, sigma in summary['noise_multipliers'].items():
    lines.append(
      f'| {group} | {sigma:.3f} | {summary["steps"][group]} | '
      f'{summary["epsilon_rdp"][group]:.3g} | {summary["epsilon_pld"][group]:.3g} |'
    )
  lines.append(f'\nNote: {summary["note"]}.')
  return '\n'.join(lines)


def _write_results(
  workdir, loop: LoopResult, table: str, notes: dict, privacy_summary, participation, engine
) -> None:
  with open(os.path.join(workdir, outputs.RESULTS_MD), 'w') as f:
    f.write(f'Stopped: {loop.stop_reason}.\n\n{table}\n')
  with open(os.path.join(workdir, outputs.RESULTS_JSON), 'w') as f:
    json.dump(
      {
        'rounds_completed': loop.rounds_completed,
        'stop_reason': loop.stop_reason,
        'resumed_from_round': loop.resumed_from,
        'non_finite_rounds': loop.non_finite_rounds,
        'final_eval': loop.final_eval,
        'mean_over_hospitals': {
          m: evaluation.mean_over_hospitals(loop.final_eval, m)
          for m in next(iter(loop.final_eval.values()))
          if m != 'num_examples'
        },
        'undefined_metric_notes': {h: n for h, n in notes.items() if n},
        'privacy': privacy_summary,
        'participation': participation,
        'engine': engine,
      },
      f,
      indent=2,
    )
  logging.info('Results written to %s', workdir)
