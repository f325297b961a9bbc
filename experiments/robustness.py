r"""Clean vs attacked federations under each aggregator, over seeds.

  uv run python -m experiments.robustness --config=configs/heart_disease_robustness.py [--workdir=OUT]

Kept thin: the study is `tff_med.study.robustness.run_robustness`, which notebooks call too.
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow  # noqa: E402, F401  (before app.run; see experiments/train.py)
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from experiments import study_main  # noqa: E402

from tff_med.study import robustness  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
  'config', None, 'Robustness config file.', lock_config=True
)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory (default: runs/<config name>).')


main = study_main.config_main(_CONFIG, _WORKDIR, robustness.run_robustness)

if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  app.run(main)
