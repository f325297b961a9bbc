"""One federated training run from a config: the function the binary and notebooks call."""

from __future__ import annotations

from tff_med.deployment import coordinator
from tff_med.run import sequence, settings, simulated
from tff_med.run.sequence import RunResult


def train(config, workdir: str, *, print_fn=print) -> RunResult:
  """Trains the config's model federatedly; writes everything under `workdir`.

  Rerunning with the same config and workdir resumes from the last checkpoint.
  With `config.deployment.workers` set the hospitals are remote TFF workers
  (`deployment.coordinator.prepare`); otherwise all are simulated here
  (`run.simulated.prepare`). Both routes then run `run.sequence.execute`.

  Args:
    config: An experiment `ml_collections.ConfigDict` (see `configs/`).
    workdir: Output directory (checkpoints, TensorBoard, CSV, model, results).
    print_fn: Where progress lines and the results table go.

  Returns:
    A `run.sequence.RunResult`.

  Raises:
    ConfigError, ShardError: Bad config or data, before any training.
    DeploymentError: A hospital's worker is unreachable or refuses; or hospitals drop
      out until fewer than `deployment.min_hospitals` remain.
  """
  remote = bool(config.get('deployment') and config.deployment.workers)
  settings.validate_training(config, remote=remote)
  route = coordinator.prepare(config) if remote else simulated.prepare(config)
  with route as prepared:
    return sequence.execute(config, workdir, prepared, print_fn=print_fn)
