"""How much accuracy does patient-level privacy cost? Epsilon sweep on the heart data.

FedAvg with DP-SGD inside every hospital (per-patient clipping at norm 1 and
Gaussian noise), each hospital's noise calibrated so that it spends the target
epsilon at delta 1e-3 by the last round, against non-private FedAvg; FLamby's
budget (15 rounds of 100 local steps of batch 4), 3 seeds.

  uv run python -m experiments.privacy --config=configs/heart_disease_privacy.py

73 s on 2 cores (2026-12-05, runtime.engine='auto'; 116 s all on TFF's engine:
`uv run python -m benchmarks.studies`); `:smoke` is 1 seed, 2 rounds, epsilon inf and 1.
Writes privacy.csv, privacy.md and privacy_utility.png under the workdir.
Anchor: FLamby's record-level DP on Fed-Heart-Disease lost at most 1.5 points
at epsilon 1, delta 1e-3 (about 2.7 at delta 1e-4, 11 at epsilon 0.1).
"""

import ml_collections

from configs import heart_disease


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the privacy-sweep config; `variant` 'smoke' is a tiny run for tests."""
  config = heart_disease.get_config(variant)  # Also refuses unknown variants.
  config.name = 'heart_disease_privacy'
  config.runtime.engine = (
    'auto'  # Fused where proved equal to TFF (--config.runtime.engine=tff: all TFF).
  )
  config.training.eval_every = config.training.rounds
  # A killed study reruns its current run from the start (a second or two); a checkpoint
  # (TFF's FileProgramStateManager writes a SavedModel) costs 0.12 s, so one per run.
  config.training.checkpoint_every = config.training.rounds
  config.privacy.l2_norm_clip = 1.0
  config.privacy_study = ml_collections.ConfigDict()
  config.privacy_study.epsilons = (float('inf'), 10.0, 5.0, 1.0, 0.5)  # inf: non-private.
  config.privacy_study.deltas = (1e-3,)
  config.privacy_study.seeds = 3
  if variant == 'smoke':
    config.privacy_study.epsilons = (float('inf'), 1.0)
    config.privacy_study.seeds = 1
  return config
