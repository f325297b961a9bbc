r"""Accuracy of patient-level DP FedAvg at each target epsilon, over seeds.

  uv run python -m experiments.privacy --config=configs/heart_disease_privacy.py [--workdir=OUT]

Kept thin: the study is `tff_med.study.privacy_sweep.run_privacy_sweep`, which notebooks call too.
"""

import tensorflow  # noqa: F401  (before app.run; see experiments/train.py)
from absl import flags
from ml_collections import config_flags

from experiments import console, study_main

from tff_med.study import privacy_sweep

_CONFIG = config_flags.DEFINE_config_file(
  'config', None, 'Privacy-sweep config file.', lock_config=True
)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory (default: runs/<config name>).')


main = study_main.config_main(_CONFIG, _WORKDIR, privacy_sweep.run_privacy_sweep)

if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  console.run(main)
