"""What if one hospital sends garbage? Clean vs attacked, under each aggregator.

One adversarial hospital (the first alphabetically: Cleveland) flips the sign of
its update and scales it by 10, on the four heart hospitals and on the same
patients dealt at random to 10 synthetic hospitals; FedAvg with the weighted
mean, the coordinate-wise median, the trimmed mean, Multi-Krum (one update left
out), clipping to the median norm, and TFF's robust aggregator;
FLamby's budget (15 rounds of 100 local steps of batch 4), 3 seeds.

  uv run python -m experiments.robustness --config=configs/heart_disease_robustness.py

65 s on 2 cores (runtime.engine='auto', 2026-12-05; 244 s all on TFF's engine:
`uv run python -m benchmarks.studies`); `:smoke` is 1 seed, 2 rounds, 2 aggregators, 4 hospitals.
Writes robustness.csv, robustness.md and robustness.png under the workdir.
"""

import ml_collections

from configs import heart_disease


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the robustness-study config; `variant` 'smoke' is a tiny run for tests."""
  config = heart_disease.get_config(variant)  # Also refuses unknown variants.
  config.name = 'heart_disease_robustness'
  config.runtime.engine = (
    'auto'  # Fused where proved equal to TFF (--config.runtime.engine=tff: all TFF).
  )
  config.training.eval_every = config.training.rounds
  # A killed study reruns its current run from the start (a second or two); a checkpoint
  # (TFF's FileProgramStateManager writes a SavedModel) costs 0.12 s, so one per run.
  config.training.checkpoint_every = config.training.rounds
  config.attack.scale = 10.0
  config.robustness = ml_collections.ConfigDict()
  config.robustness.attack = 'sign_flip'
  config.robustness.aggregators = (
    'mean',
    'median',
    'trimmed_mean',
    'multi_krum',
    'norm_clip',
    'robust',
  )
  config.robustness.seeds = 3
  config.robustness.synthetic_hospitals = 10  # 0: only the four real hospitals.
  if variant == 'smoke':
    config.robustness.aggregators = ('mean', 'median')
    config.robustness.seeds = 1
    config.robustness.synthetic_hospitals = 0
  return config
