r"""A whole heart study with each engine, TFF's and the fused one, alternating runs.

  uv run python -m benchmarks.engines [--rounds=100] [--repeats=2]

Runs `experiment.train` on the heart config (evaluation every 5 rounds,
checkpoints every 5) with `runtime.engine='tff'` and `'fused'`, alternating
(tff, fused, tff, fused, ...) so machine noise hits both, each in its own
temporary workdir. Prints per engine: the median wall time of a run, the median
steady round (rounds 3..N from metrics.csv; evaluation excluded), and the
largest difference between the engines' final weights and mean accuracy.
"""

import csv
import os
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # noqa: E402
import tensorflow  # noqa: E402, F401  (before app.run; see experiments/train.py)
from absl import app, flags  # noqa: E402

from configs import heart_disease  # noqa: E402
from tff_med import experiment
from tff_med.learning import evaluation
from tff_med.run import export, outputs

_ROUNDS = flags.DEFINE_integer('rounds', 100, 'Rounds per run.')
_REPEATS = flags.DEFINE_integer('repeats', 2, 'Runs per engine.')
ENGINES = ('tff', 'fused')


def _run(engine: str, data_root: str):
  config = heart_disease.get_config()
  config.data.root = data_root
  config.runtime.engine = engine
  config.training.rounds = _ROUNDS.value
  with tempfile.TemporaryDirectory() as workdir:
    began = time.perf_counter()
    result = experiment.train(config, workdir, print_fn=lambda _: None)
    wall = time.perf_counter() - began
    with open(os.path.join(workdir, outputs.METRICS_CSV)) as f:
      rounds = [float(r['round_seconds']) for r in csv.DictReader(f) if r['round_seconds']]
    model, _ = export.load_exported(workdir)
    accuracy = evaluation.mean_over_hospitals(result.loop.final_eval, 'accuracy')
    return wall, float(np.median(rounds[2:])), model.get_weights(), accuracy


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  tensorflow.get_logger().setLevel('ERROR')
  runs = {engine: [] for engine in ENGINES}
  with tempfile.TemporaryDirectory() as data_root:
    for _ in range(_REPEATS.value):
      for engine in ENGINES:
        runs[engine].append(_run(engine, data_root))
  print(f'heart config, {_ROUNDS.value} rounds, {_REPEATS.value} runs per engine (medians):')
  print(f'{"engine":8s} {"run s":>8s} {"round ms":>9s} {"mean accuracy":>14s}')
  for engine, results in runs.items():
    wall = np.median([r[0] for r in results])
    round_ms = np.median([r[1] for r in results]) * 1e3
    print(f'{engine:8s} {wall:8.1f} {round_ms:9.1f} {results[-1][3]:14.4f}')
  difference = max(
    float(np.max(np.abs(a - b)))
    for a, b in zip(runs['tff'][-1][2], runs['fused'][-1][2], strict=True)
  )
  print(f'largest final weight difference, tff vs fused: {difference:.1e}')
  speedup = np.median([r[1] for r in runs['tff']]) / np.median([r[1] for r in runs['fused']])
  print(f'steady round, tff / fused: {speedup:.1f}x')


if __name__ == '__main__':
  app.run(main)
