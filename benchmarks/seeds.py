"""One config trained at seeds 0..n-1, each in a temporary workdir: what the accuracy benchmarks share."""

import tempfile

from tff_med import experiment


def final_evals(config, seeds: int):
  """Yields (seed, the run's final evaluation) for `config` trained at each seed."""
  for seed in range(seeds):
    run_config = config.copy_and_resolve_references()
    run_config.seed = seed
    with tempfile.TemporaryDirectory() as workdir:
      result = experiment.train(run_config, workdir, print_fn=lambda _: None)
    yield seed, result.loop.final_eval
