r"""Round time and peak memory from 4 to 256 hospitals, on TFF's engine and the fused one.

  uv run python -m benchmarks.scale [--counts=4,16,64,256] [--rounds=6] [--engines=tff,fused]

Synthetic heart-shaped shards (13 standard-normal features, a logistic label),
logistic regression, FedAvg, batch 16, in two regimes: the same total rows split
over more hospitals (4096 rows), and the same rows per hospital (64 each). Each
hospital takes one epoch's worth of local steps of its share (rows / hospitals /
16, at least 1), so every run of a regime trains on the same number of examples
per round. For each engine it prints the median round time (rounds 3..N,
`round_seconds` from the run's metrics.csv, evaluation excluded), the time per
hospital, the peak RSS of Python and of the TFF worker (none for the fused
engine), and the round time at the largest count over the smallest.
Target (issue #19): with the fused engine, the same total rows over 4 or 256
hospitals within 1.5x.
"""

import csv
import os
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow  # noqa: E402, F401  (before app.run; see experiments/train.py)
from absl import app, flags  # noqa: E402

from benchmarks import process_stats  # noqa: E402
from configs import csv_shards  # noqa: E402
from tff_med import experiment  # noqa: E402
from tff_med.data.split import write_site_shards  # noqa: E402
from tff_med.run import outputs  # noqa: E402

_COUNTS = flags.DEFINE_list('counts', ['4', '16', '64', '256'], 'Numbers of hospitals.')
_ROUNDS = flags.DEFINE_integer('rounds', 6, 'Rounds per run (the first two are warm-up).')
_ENGINES = flags.DEFINE_list('engines', ['tff', 'fused'], 'runtime.engine values to measure.')
TOTAL_ROWS = 4096
ROWS_PER_HOSPITAL = 64
BATCH = 16


def _shards(root: str, hospitals: int, rows: int, seed: int = 0) -> str:
  rng = np.random.RandomState(seed)
  x = rng.normal(size=(rows, 13))
  y = (x @ rng.normal(size=13) + rng.normal(size=rows) > 0).astype(int)
  table = pd.DataFrame(x, columns=[f'f{i}' for i in range(13)])
  table['label'] = y
  table.insert(0, 'site', [f'h{i:03d}' for i in np.arange(rows) % hospitals])
  write_site_shards(table, 'site', root, seed=seed)
  return root


def _run(hospitals: int, rows: int, engine: str) -> tuple[float, float, float]:
  with tempfile.TemporaryDirectory() as tmp:
    config = csv_shards.get_config()
    config.data.root = _shards(os.path.join(tmp, 'shards'), hospitals, rows)
    config.data.label = 'label'
    config.data.batch_size = BATCH
    config.data.local_steps = max(1, rows // (hospitals * BATCH))
    config.data.local_epochs = 0
    config.runtime.engine = engine
    config.training.rounds = _ROUNDS.value
    config.training.eval_every = _ROUNDS.value
    workdir = os.path.join(tmp, 'run')
    process_stats.reset_peak_rss()
    peaks = [(0.0, 0.0)]

    def sample(line):  # The worker exists only during the run: sample its peak each round.
      if line.startswith('round'):
        peaks.append(process_stats.peak_rss_mib())

    experiment.train(config, workdir, print_fn=sample)
    python_peak = max(p for p, _ in peaks)
    worker_peak = max(w for _, w in peaks)
    with open(os.path.join(workdir, outputs.METRICS_CSV)) as f:
      seconds = [float(r['round_seconds']) for r in csv.DictReader(f) if r['round_seconds']]
  return float(np.median(seconds[2:])), python_peak, worker_peak


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  tensorflow.get_logger().setLevel('ERROR')
  print(
    f'{"engine":6s} {"regime":28s} {"hospitals":>9s} {"rows":>6s} {"round s":>8s} '
    f'{"ms/hospital":>12s} {"peak python MiB":>16s} {"peak worker MiB":>16s}'
  )
  counts = list(map(int, _COUNTS.value))
  growth = []
  for engine in _ENGINES.value:
    for regime, rows_fn in (
      (f'same total rows ({TOTAL_ROWS})', lambda n: TOTAL_ROWS),
      (f'same rows per hospital ({ROWS_PER_HOSPITAL})', lambda n: n * ROWS_PER_HOSPITAL),
    ):
      seconds = {}
      for n in counts:
        seconds[n], python_peak, worker_peak = _run(n, rows_fn(n), engine)
        print(
          f'{engine:6s} {regime:28s} {n:9d} {rows_fn(n):6d} {seconds[n]:8.4f} '
          f'{seconds[n] / n * 1e3:12.2f} {python_peak:16.0f} {worker_peak:16.0f}',
          flush=True,
        )
      growth.append((engine, regime, seconds[counts[-1]] / seconds[counts[0]]))
  for engine, regime, ratio in growth:
    print(f'{engine}, {regime}: {counts[-1]} hospitals / {counts[0]}: {ratio:.2f}x')


if __name__ == '__main__':
  app.run(main)
