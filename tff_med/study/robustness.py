"""Robustness study: clean vs attacked federations under each aggregator, over seeds.

Runs ordinary `experiment.train` runs (one TensorBoard run each) on the four
heart hospitals and on a synthetic split of the same patients into more
hospitals, with one adversarial hospital, and reports mean accuracy over the
hospitals' test sets. Targets (a medical ethics board's questions): the attack
must be real, the robust aggregator must hold, and robustness must cost little
when nobody attacks.
"""

from __future__ import annotations

import glob
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np

from tff_med import experiment
from tff_med.data import heart_disease
from tff_med.data.layout import discover_hospitals
from tff_med.data.split import write_site_shards
from tff_med.errors import ConfigError
from tff_med.learning import evaluation
from tff_med.run import outputs, settings
from tff_med.study import provenance, report, shared_worker


def synthetic_heart_shards(root: str, num_hospitals: int, seed: int) -> str:
  """The heart patients dealt at random (seeded) to `num_hospitals` synthetic hospitals."""
  if not os.path.isdir(root):
    table = heart_disease.load_clean_table().drop(columns=['hospital'])
    sites = np.random.RandomState(seed).randint(0, num_hospitals, len(table))
    table.insert(0, 'site', [f'hospital_{s:02d}' for s in sites])
    write_site_shards(table, 'site', root, seed=seed)
  return root


def _federations(config) -> dict[str, str]:
  r = config.robustness
  federations = {'heart_4_hospitals': heart_disease.write_shards(config.data.root)}
  if r.synthetic_hospitals:
    name = f'heart_{r.synthetic_hospitals}_synthetic'
    federations[name] = synthetic_heart_shards(
      os.path.join(os.path.dirname(config.data.root) or '.', name), r.synthetic_hospitals, 0
    )
  return federations


def _run(config, root, source, seed, kind, aggregator, workdir):
  run = config.copy_and_resolve_references()
  with run.unlocked():
    del run['robustness']
  run.seed = seed
  run.data.root = root
  run.data.source = source
  run.algorithm.aggregator = aggregator
  run.attack.kind = kind
  run.attack.hospitals = (discover_hospitals(root)[0],) if kind != 'none' else ()
  result = experiment.train(run, workdir, print_fn=lambda _: None)
  return evaluation.mean_over_hospitals(result.loop.final_eval, 'accuracy'), run.attack.hospitals


@shared_worker.one_worker_per_study
def run_robustness(config, workdir: str, *, print_fn=print) -> list[dict]:
  """Runs every federation x attack x aggregator x seed; writes robustness.csv/.md/.png."""
  r = config.robustness
  if r.seeds < 1:
    raise ConfigError(f'robustness.seeds must be >= 1, got {r.seeds}')
  settings.validate_training(config)
  rows, federations = [], _federations(config)
  files = [glob.glob(os.path.join(root, '*', '*.csv')) for root in federations.values()]
  provenance.write_study_manifest(workdir, config, range(r.seeds), sum(files, []))
  for federation, root in federations.items():
    source = 'heart_disease' if root == config.data.root else 'csv'
    for kind in ('none', r.attack):
      for aggregator in r.aggregators:
        for seed in range(r.seeds):
          run_dir = os.path.join(
            workdir, outputs.RUNS_DIR, federation, f'{kind}_{aggregator}', f'seed_{seed}'
          )
          acc, adversaries = _run(config, root, source, seed, kind, aggregator, run_dir)
          rows.append(
            {
              'federation': federation,
              'attack': kind,
              'adversary': ' '.join(adversaries),
              'aggregator': aggregator,
              'seed': seed,
              'accuracy': acc,
            }
          )
          print_fn(f'{federation} {kind} {aggregator} seed {seed}: accuracy {acc:.3f}')
  _write(workdir, rows, r.attack)
  print_fn(provenance.record_engines(workdir, outputs.ROBUSTNESS_MD))
  return rows


def _mean(rows, **match):
  values = [x['accuracy'] for x in rows if all(x[k] == v for k, v in match.items())]
  return float(np.mean(values)), float(np.std(values))


def _write(workdir, rows, attack):
  lines = [
    f'# Robustness: one adversarial hospital ({attack})',
    '',
    "Mean accuracy over the hospitals' test sets, mean ± sd over seeds.",
    '',
    '| federation | aggregator | clean | attacked | attack costs | robustness costs (clean, vs mean) |',
    '|---|---|---:|---:|---:|---:|',
  ]
  fig, ax = plt.subplots(figsize=(8, 4))
  labels = []
  for federation in dict.fromkeys(x['federation'] for x in rows):
    clean_mean, _ = _mean(rows, federation=federation, attack='none', aggregator='mean')
    for aggregator in dict.fromkeys(x['aggregator'] for x in rows):
      clean = _mean(rows, federation=federation, attack='none', aggregator=aggregator)
      hit = _mean(rows, federation=federation, attack=attack, aggregator=aggregator)
      lines.append(
        f'| {federation} | {aggregator} | {clean[0]:.3f} ± {clean[1]:.3f} | '
        f'{hit[0]:.3f} ± {hit[1]:.3f} | {clean[0] - hit[0]:+.3f} | '
        f'{clean_mean - clean[0]:+.3f} |'
      )
      labels.append(f'{federation}\n{aggregator}')
      ax.bar(len(labels) - 1.2, clean[0], 0.4, color='tab:blue')
      ax.bar(len(labels) - 0.8, hit[0], 0.4, color='tab:red')
  ax.set_xticks(np.arange(len(labels)) - 1, labels, fontsize=6, rotation=30, ha='right')
  ax.set_ylabel('mean accuracy over hospitals')
  ax.legend(['clean', attack], fontsize=8)
  ax.set_ylim(0, 1)
  report.write_study(
    workdir,
    table=outputs.ROBUSTNESS_CSV,
    rows=rows,
    summary=outputs.ROBUSTNESS_MD,
    lines=lines,
    plot=outputs.ROBUSTNESS_PNG,
    fig=fig,
  )
