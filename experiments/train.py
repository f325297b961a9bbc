r"""Trains a Keras model federatedly across hospitals, as a config says.

  uv run python -m experiments.train --config=configs/heart_disease.py
  uv run python -m experiments.train --config=configs/csv_shards.py \
      --config.data.root=DIR --config.data.label=COLUMN --workdir=OUT

Kept thin on purpose: everything happens in `tff_med.experiment.train`, which a
notebook calls too.
"""

import os


# TensorFlow must be imported before `app.run`: imported inside `main`, Keras 2.14
# builds graph-mode tensors and functional models fail ("SymbolicTensor has no
# attribute 'node'").
import tensorflow
from absl import app, flags
from ml_collections import config_flags

from experiments import console
from tff_med import experiment

_CONFIG = config_flags.DEFINE_config_file(
  'config', None, 'Experiment config file.', lock_config=True
)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory (default: runs/<config name>).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  tensorflow.get_logger().setLevel('ERROR')  # Keeps SavedModel chatter off the progress lines.
  config = _CONFIG.value
  workdir = _WORKDIR.value or os.path.join('runs', config.name)
  console.log_to_workdir(workdir)  # The config itself is in <workdir>/config.json.
  experiment.train(config, workdir)


if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  console.run(main)
