"""Is federating worth it? Local vs pooled vs federated on the four heart hospitals.

FLamby's protocol (du Terrail et al., NeurIPS 2022): every federated strategy
gets 15 rounds of 100 local steps of batch 4 at each hospital; pooled and local
training see the same number of samples (6000 steps of batch 4); FedAvg's final
model is also fine-tuned at each hospital. 5 seeds. Every model is evaluated on
every hospital's test shard and on their union.

  uv run python -m experiments.compare --config=configs/heart_disease_compare.py
  uv run python -m experiments.compare --config=configs/heart_disease_compare.py:smoke

The full study takes 55 to 67 s on 2 cores (2026-12-05, `uv run python -m benchmarks.studies`;
federated methods on the fused engine, runtime.engine='auto'; 162 to 206 s all on TFF's engine),
the smoke one about 17 s.
Writes results.csv, summary.md (next to FLamby's published figures), the
cross-site matrix, plots, a heterogeneity report and one TensorBoard run per
method and seed under the workdir (default runs/heart_disease_compare).
"""

import ml_collections

from configs import heart_disease


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the study config; `variant` 'smoke' is 1 seed, 2 rounds, 2 strategies."""
  config = heart_disease.get_config(variant)  # Also refuses unknown variants.
  config.name = 'heart_disease_compare'
  config.runtime.engine = (
    'auto'  # Fused where proved equal to TFF (--config.runtime.engine=tff: all TFF).
  )
  # A killed study reruns its current run from the start (a second or two); a checkpoint
  # (TFF's FileProgramStateManager writes a SavedModel) costs 0.12 s, so one per run.
  config.training.checkpoint_every = config.training.rounds
  config.algorithm.proximal_strength = 0.1  # fedprox's mu (0.1 and 1.0 measured alike here).
  config.study = ml_collections.ConfigDict()
  config.study.seeds = 5
  # 'local', 'pooled', any algorithm name, and '<algorithm>+finetune'.
  config.study.methods = (
    'local',
    'pooled',
    'fedavg',
    'fedprox',
    'fedadam',
    'fedyogi',
    'fedadagrad',
    'fedavg+finetune',
  )
  config.study.centralized_steps = 0  # 0: as many samples as a federated run sees.
  config.study.finetune_epochs = 5
  config.study.bootstrap_samples = 1000
  if variant == 'smoke':
    config.study.seeds = 1
    config.study.methods = ('local', 'pooled', 'fedavg', 'fedavg+finetune')
    config.study.bootstrap_samples = 100
  return config
