r"""Clean vs attacked federations under each aggregator, over seeds.

  uv run python -m experiments.robustness --config=configs/heart_disease_robustness.py [--workdir=OUT]

Kept thin: the study is `tff_med.study.robustness.run_robustness`, which notebooks call too.
"""

import tensorflow  # noqa: F401  (before app.run; see experiments/train.py)
from absl import flags
from ml_collections import config_flags

from experiments import console, study_main

from tff_med.study import robustness

_CONFIG = config_flags.DEFINE_config_file(
  'config', None, 'Robustness config file.', lock_config=True
)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory (default: runs/<config name>).')


main = study_main.config_main(_CONFIG, _WORKDIR, robustness.run_robustness)

if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  console.run(main)
