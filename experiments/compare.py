r"""Local vs pooled vs federated, with clinical metrics, over seeds (FLamby's protocol).

  uv run python -m experiments.compare --config=configs/heart_disease_compare.py [--workdir=OUT]

Kept thin: the study is `tff_med.study.compare.run_study`, which notebooks call too.
"""

import tensorflow  # noqa: F401  (before app.run; see experiments/train.py)
from absl import flags
from ml_collections import config_flags

from experiments import console, study_main

from tff_med.study import compare

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Study config file.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory (default: runs/<config name>).')


main = study_main.config_main(_CONFIG, _WORKDIR, compare.run_study)

if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  console.run(main)
