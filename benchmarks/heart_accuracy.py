r"""Accuracy and AUC of the heart config over seeds: the numbers the README quotes.

  uv run python -m benchmarks.heart_accuracy [--seeds=5] [--config=configs/heart_disease.py]

Runs `tff_med.experiment.train` once per seed (FLamby's budget: 15 rounds of
100 local steps of batch 4) and prints per-hospital accuracy and AUC, their
mean over hospitals, and mean +- sd over seeds. About 25 s per seed on 2 cores.
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # noqa: E402
import tensorflow  # noqa: E402, F401  (before app.run; see experiments/train.py)
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from benchmarks import seeds  # noqa: E402
from tff_med.learning import evaluation

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/heart_disease.py', 'Config file.')
_SEEDS = flags.DEFINE_integer('seeds', 5, 'Number of seeds (0..seeds-1).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  tensorflow.get_logger().setLevel('ERROR')
  rows = []
  for seed, final in seeds.final_evals(_CONFIG.value, _SEEDS.value):
    rows.append({m: evaluation.mean_over_hospitals(final, m) for m in ('accuracy', 'auc')})
    print(
      f'seed {seed}: '
      + '  '.join(f'{h} acc {v["accuracy"]:.3f} auc {v["auc"]:.3f}' for h, v in final.items())
      + f'  | mean over hospitals acc {rows[-1]["accuracy"]:.3f} auc {rows[-1]["auc"]:.3f}',
      flush=True,
    )
  for metric in ('accuracy', 'auc'):
    values = np.array([r[metric] for r in rows])
    print(
      f'{_CONFIG.value.name}, {len(rows)} seeds: mean over hospitals {metric} '
      f'{values.mean():.3f} +- {values.std(ddof=1) if len(values) > 1 else 0:.3f}'
    )


if __name__ == '__main__':
  app.run(main)
