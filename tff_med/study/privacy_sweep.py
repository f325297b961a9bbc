"""Privacy-utility study: accuracy of patient-level DP FedAvg at each target epsilon, over seeds.

Every point is an ordinary `experiment.train` run (one TensorBoard run each):
epsilon = inf is non-private FedAvg; a finite epsilon is DP-SGD in every
hospital with each hospital's noise calibrated to spend exactly that epsilon at
the sweep's delta by the last round. Writes privacy.csv (one row per run),
privacy.md (mean ± sd over seeds, drop vs non-private, epsilons by both
accountants) and privacy_utility.png.
"""

from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np

from tff_med import experiment
from tff_med.errors import ConfigError
from tff_med.learning import evaluation
from tff_med.learning import task as task_lib
from tff_med.run import outputs, settings
from tff_med.study import provenance, report, shared_worker


def validate(config) -> None:
  """Checks the `privacy_study` block before any training."""
  s = config.privacy_study
  if s.seeds < 1:
    raise ConfigError(f'privacy_study.seeds must be >= 1, got {s.seeds}')
  if not s.epsilons or not s.deltas:
    raise ConfigError('privacy_study.epsilons and privacy_study.deltas must not be empty')
  bad = [e for e in s.epsilons if not (e > 0)]
  if bad:
    raise ConfigError(f'privacy_study.epsilons must be > 0 (inf: non-private), got {bad}')
  settings.validate_training(config)


def _run_config(config, seed: int, epsilon: float, delta: float):
  run = config.copy_and_resolve_references()
  with run.unlocked():
    del run['privacy_study']
  run.seed = seed
  if math.isinf(epsilon):
    run.privacy.level = 'none'
  else:
    run.privacy.level = 'patient'
    run.privacy.target_epsilon = float(epsilon)
    run.privacy.delta = float(delta)
  return run


@shared_worker.one_worker_per_study
def run_privacy_sweep(config, workdir: str, *, print_fn=print) -> list[dict]:
  """Runs every (epsilon, delta, seed); writes privacy.csv/.md/.png under `workdir`."""
  validate(config)
  s = config.privacy_study
  points = [(math.inf, None)] + [
    (eps, delta) for eps in s.epsilons if not math.isinf(eps) for delta in s.deltas
  ]
  raw = task_lib.load_shards(config.data)
  provenance.write_study_manifest(
    workdir, config, range(s.seeds), [f for shard in raw.shards for f in shard.files]
  )
  rows = []
  for epsilon, delta in points:
    for seed in range(s.seeds):
      tag = 'non_private' if delta is None else f'eps_{epsilon:g}_delta_{delta:g}'
      run = _run_config(config, seed, epsilon, delta or 0.0)
      result = experiment.train(
        run, os.path.join(workdir, outputs.RUNS_DIR, tag, f'seed_{seed}'), print_fn=lambda _: None
      )
      final = result.loop.final_eval
      spent = _spent(result.privacy)
      rows.append(
        {
          'target_epsilon': epsilon,
          'delta': delta if delta is not None else '',
          'seed': seed,
          'accuracy': evaluation.mean_over_hospitals(final, 'accuracy'),
          'auc': evaluation.mean_over_hospitals(final, 'auc'),
          'max_epsilon_rdp': spent.get('rdp', math.inf),
          'max_epsilon_pld': spent.get('pld', math.inf),
          'max_noise_multiplier': spent.get('noise', 0.0),
        }
      )
      print_fn(
        f'epsilon {epsilon:g} delta {delta or "-"} seed {seed}: accuracy {rows[-1]["accuracy"]:.3f}'
      )
  _write(workdir, rows)
  print_fn(provenance.record_engines(workdir, outputs.PRIVACY_MD))
  return rows


def _spent(summary: dict) -> dict:
  """The largest epsilon (both accountants) and noise multiplier over hospitals of a run."""
  if summary['level'] == 'none':
    return {}
  return {
    'rdp': max(summary['epsilon_rdp'].values()),
    'pld': max(summary['epsilon_pld'].values()),
    'noise': max(summary['noise_multipliers'].values()),
  }


def _select(rows, epsilon, delta):
  return [r for r in rows if r['target_epsilon'] == epsilon and r['delta'] == delta]


def _stats(rows, epsilon, delta, key):
  values = [r[key] for r in _select(rows, epsilon, delta)]
  return float(np.mean(values)), float(np.std(values))


def _write(workdir, rows) -> None:
  base, _ = _stats(rows, math.inf, '', 'accuracy')
  lines = [
    '# Privacy vs utility: patient-level DP-SGD in every hospital',
    '',
    "Mean accuracy and AUC over the hospitals' test sets (AUC over hospitals where it is "
    'defined), mean ± sd over seeds. Each hospital spends the target epsilon (RDP accountant, '
    'used for calibration); the PLD column is the tighter accounting of the same runs.',
    '',
    '| target epsilon | delta | accuracy | drop vs non-private | AUC | max epsilon (PLD) | '
    'max noise multiplier |',
    '|---:|---:|---:|---:|---:|---:|---:|',
  ]
  fig, ax = plt.subplots(figsize=(6, 4))
  for delta in dict.fromkeys(r['delta'] for r in rows):
    epsilons = list(dict.fromkeys(r['target_epsilon'] for r in rows if r['delta'] == delta))
    accs = [_stats(rows, e, delta, 'accuracy') for e in epsilons]
    for e, (acc, sd) in zip(epsilons, accs, strict=True):
      auc, auc_sd = _stats(rows, e, delta, 'auc')
      pld = max(r['max_epsilon_pld'] for r in _select(rows, e, delta))
      noise = max(r['max_noise_multiplier'] for r in _select(rows, e, delta))
      lines.append(
        f'| {e:g} | {delta if delta != "" else "-"} | {acc:.3f} ± {sd:.3f} | {base - acc:+.3f} | '
        f'{auc:.3f} ± {auc_sd:.3f} | {pld:.3g} | {noise:.3g} |'
      )
    if delta != '':
      ax.errorbar(
        epsilons,
        [a for a, _ in accs],
        [s for _, s in accs],
        marker='o',
        capsize=3,
        label=f'DP-SGD, delta {delta:g}',
      )
  ax.axhline(base, color='black', linestyle='--', label='non-private FedAvg')
  ax.set_xscale('log')
  ax.set_xlabel('epsilon per hospital (patient level)')
  ax.set_ylabel('mean accuracy over hospitals')
  ax.legend(fontsize=8)
  report.write_study(
    workdir,
    table=outputs.PRIVACY_CSV,
    rows=rows,
    summary=outputs.PRIVACY_MD,
    lines=lines,
    plot=outputs.PRIVACY_PNG,
    fig=fig,
  )
