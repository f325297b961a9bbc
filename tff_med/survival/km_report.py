"""Writes a federated Kaplan–Meier result: `km.csv`, `km.md` and `km.png`."""

from __future__ import annotations

import csv
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from tff_med.survival.kaplan_meier import POOLED, KaplanMeier  # noqa: E402

KM_CSV, KM_MD, KM_PNG = 'km.csv', 'km.md', 'km.png'


def summary(result: KaplanMeier) -> str:
  """Markdown: bins, survival at the end of follow-up, and the log-rank test."""
  lines = [
    '# Kaplan–Meier across hospitals (federated: only per-bin counts left each hospital)',
    '',
    f'Minimum count per published bin: {result.min_count or "none"}.',
    '',
    '| curve | bin width (days) | patients | deaths | survival at the last bin (95% CI) |',
    '|---|---:|---:|---:|---:|',
  ]
  for name, c in result.curves.items():
    lines.append(
      f'| {name} | {c.width:g} | {int(c.at_risk[0])} | {int(c.deaths.sum())} | '
      f'{c.survival[-1]:.3f} ({c.lower[-1]:.3f} to {c.upper[-1]:.3f}) |'
    )
  lines += [
    '',
    f'Log-rank test across hospitals: chi-square {result.logrank_statistic:.2f}, '
    f'{len(result.curves) - 2} degrees of freedom, p = {result.logrank_p:.3g}.',
  ]
  return '\n'.join(lines)


def write(workdir: str, result: KaplanMeier) -> str:
  """Writes the curves (CSV), the summary (Markdown) and the plot (PNG); returns the summary."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, KM_CSV), 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(
      ['curve', 'bin_start', 'at_risk', 'deaths', 'censored', 'survival', 'lower', 'upper']
    )
    for name, c in result.curves.items():
      for row in zip(
        c.times, c.at_risk, c.deaths, c.censored, c.survival, c.lower, c.upper, strict=True
      ):
        writer.writerow([name, *(f'{v:.6g}' for v in row)])
  text = summary(result)
  with open(os.path.join(workdir, KM_MD), 'w') as f:
    f.write(text + '\n')
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for name, c in result.curves.items():
    pooled = name == POOLED
    ends = list(c.times[1:]) + [c.times[-1] + (c.times[1] - c.times[0] if len(c.times) > 1 else 1)]
    ax.step(
      [0, *ends],
      [1.0, *c.survival],
      where='post',
      lw=2.5 if pooled else 1.2,
      label=name,
      color='black' if pooled else None,
    )
    if pooled:
      ax.fill_between(
        [0, *ends], [1.0, *c.lower], [1.0, *c.upper], step='post', alpha=0.2, color='grey'
      )
  ax.set_xlabel('days')
  ax.set_ylabel('survival probability')
  ax.set_ylim(0, 1.02)
  ax.set_title(
    f'Kaplan–Meier per hospital and pooled (band: 95% CI); log-rank p = {result.logrank_p:.3g}'
  )
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, KM_PNG), dpi=120)
  plt.close(fig)
  return text


def run_kaplan_meier(config, workdir: str, *, print_fn=print) -> KaplanMeier:
  """The federated Kaplan–Meier study of a survival config's shards, written under `workdir`.

  Uses `config.survival`: `km_bin_days`, `km_min_count` and `km_horizon` (days;
  0: the whole follow-up).
  """
  from tff_med import runtime  # Imported here: the writer above needs no TFF.
  from tff_med.errors import ConfigError
  from tff_med.learning import task as task_lib
  from tff_med.survival.kaplan_meier import federated_kaplan_meier

  if not task_lib.survival_columns(config.data):
    raise ConfigError('Kaplan–Meier needs a survival config (data.event and data.time)')
  s = config.survival
  with runtime.local_runtime():
    data = task_lib.load_shards(config.data)
    result = federated_kaplan_meier(
      data, bin_days=s.km_bin_days, min_count=s.km_min_count, horizon=s.km_horizon or None
    )
  print_fn(write(workdir, result))
  return result
