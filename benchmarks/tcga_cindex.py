r"""C-index of the Fed-TCGA-BRCA config over seeds: the learning-rate sweep the survival study uses.

  uv run python -m benchmarks.tcga_cindex [--seeds=3] [--config=configs/tcga_brca.py] \
      [--config.algorithm.name=fedadagrad --config.algorithm.client_learning_rate=0.01 \
       --config.algorithm.server_learning_rate=0.3]

Runs `tff_med.experiment.train` once per seed (FLamby's budget: 15 rounds of 100
local steps of batch 8 at each of the six regions) and prints Harrell's C-index on
the pooled test set (the union of the regions' test sets) per seed, then mean and
sd. About 10 s per seed on 2 cores.
"""

import numpy as np
import tensorflow  # noqa: F401  (before app.run; see experiments/train.py)
from absl import app, flags
from ml_collections import config_flags

from benchmarks import seeds

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/tcga_brca.py', 'Config file.')
_SEEDS = flags.DEFINE_integer('seeds', 3, 'Number of seeds (0..seeds-1).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  tensorflow.get_logger().setLevel('ERROR')
  values = []
  config = _CONFIG.value
  config.training.eval_every = config.training.rounds  # Only the final model is scored.
  for seed, final in seeds.final_evals(config, _SEEDS.value):
    values.append(final['all']['cindex'])
    print(f'seed {seed}: pooled-test C-index {values[-1]:.4f}', flush=True)
  a = config.algorithm
  print(
    f'{a.name} client lr {a.client_learning_rate} server lr {a.server_learning_rate}: '
    f'{np.mean(values):.3f} +- {np.std(values, ddof=1) if len(values) > 1 else 0:.3f} '
    f'over {len(values)} seeds'
  )


if __name__ == '__main__':
  app.run(main)
