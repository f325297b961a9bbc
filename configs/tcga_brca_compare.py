"""Is federating worth it for survival? Local vs pooled vs federated Cox models on Fed-TCGA-BRCA.

FLamby's protocol for Fed-TCGA-BRCA (du Terrail et al., NeurIPS 2022): a linear
Cox model, batch 8, every federated strategy 15 rounds of 100 local steps at
each of the six regions; local and pooled training take 10 epochs of the pooled
data (more overfits); FedAvg's final model is also fine-tuned at each region. 5 seeds. Every model is tested
on every region's test set and on their union (FLamby's pooled test set), by
Harrell's C-index with a bootstrap 95% CI, next to FLamby's published figures.

  uv run python -m experiments.compare --config=configs/tcga_brca_compare.py
  uv run python -m experiments.compare --config=configs/tcga_brca_compare.py:smoke

The full study takes about 2 minutes on 2 cores (2 min 4 s measured 2026-12-05), the
smoke one under a minute; the README quotes its table.
"""

import ml_collections

from configs import heart_disease_compare, tcga_brca


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the study config; `variant` 'smoke' is 1 seed, 2 rounds, 4 methods."""
  config = tcga_brca.get_config(variant)
  config.name = 'tcga_brca_compare'
  config.runtime.engine = (
    'auto'  # Fused where proved equal to TFF (--config.runtime.engine=tff: all TFF).
  )
  # A killed study reruns its current run from the start (a second or two); a checkpoint
  # (TFF's FileProgramStateManager writes a SavedModel) costs 0.12 s, so one per run.
  config.training.checkpoint_every = config.training.rounds
  config.algorithm.proximal_strength = 0.1  # FLamby's FedProx mu.
  # The heart study's methods, seeds, fine-tuning and bootstrap (smoke: 1 seed, 4 methods).
  config.study = heart_disease_compare.get_config(variant).study
  # Client SGD at 0.03 for FedAvg, FedProx, local and pooled training; the adaptive
  # servers take FLamby's client rate 0.01 and the server rates of the sweep in
  # benchmarks/README.md ("Survival learning rates").
  config.study.algorithm_overrides = ml_collections.ConfigDict(
    {
      'fedadam': {'client_learning_rate': 0.01, 'server_learning_rate': 0.03},
      'fedyogi': {'client_learning_rate': 0.01, 'server_learning_rate': 0.03},
      'fedadagrad': {'client_learning_rate': 0.01, 'server_learning_rate': 0.3},
    }
  )
  # Local and pooled training: 10 epochs of the pooled training rows (1,090 steps of 8).
  # With as many samples as a federated run sees (9,000 steps) the pooled Cox model
  # overfits: 0.800 +- 0.032 on the pooled test set against 0.828 +- 0.017 (README).
  config.study.centralized_steps = 1090
  return config
