"""The shared `main` of the study binaries (compare, robustness): a config and a workdir."""

import os

from absl import app

from experiments import console


def config_main(config_flag, workdir_flag, run_fn, suffix: str = ''):
  """Returns an absl `main` that runs `run_fn(config, workdir)`; workdir defaults to runs/<name><suffix>."""

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    import tensorflow as tf

    tf.get_logger().setLevel('ERROR')
    config = config_flag.value
    workdir = workdir_flag.value or os.path.join('runs', config.name + suffix)
    console.log_to_workdir(workdir)
    run_fn(config, workdir)

  return main
