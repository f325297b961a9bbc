r"""The consortium's Kaplan–Meier curves and a log-rank test, from per-bin counts only.

  uv run python -m experiments.kaplan_meier --config=configs/tcga_brca.py [--workdir=OUT]

Kept thin: the study is `tff_med.survival.km_report.run_kaplan_meier`.
"""

import tensorflow  # noqa: F401  (before app.run; see experiments/train.py)
from absl import flags
from ml_collections import config_flags

from experiments import console, study_main
from tff_med.survival import km_report

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Survival config file.', lock_config=True)
_WORKDIR = flags.DEFINE_string(
  'workdir', None, 'Output directory (default: runs/<config name>_km).'
)


main = study_main.config_main(_CONFIG, _WORKDIR, km_report.run_kaplan_meier, suffix='_km')

if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  console.run(main)
