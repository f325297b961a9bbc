"""Is federating worth it for survival? Local vs pooled vs federated Cox models on Fed-TCGA-BRCA.

FLamby's protocol for Fed-TCGA-BRCA (du Terrail et al., NeurIPS 2022): a linear
Cox model, batch 8, every federated strategy 15 rounds of 100 local steps at
each of the six regions; local and pooled training see as many samples; FedAvg's
final model is also fine-tuned at each region. 5 seeds. Every model is tested
on every region's test set and on their union (FLamby's pooled test set), by
Harrell's C-index with a bootstrap 95% CI, next to FLamby's published figures.

  uv run python -m experiments.compare --config=configs/tcga_brca_compare.py
  uv run python -m experiments.compare --config=configs/tcga_brca_compare.py:smoke

The full study takes STUDY_TIME on 2 cores; the smoke one under a minute.
"""

import ml_collections

from configs import tcga_brca


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the study config; `variant` 'smoke' is 1 seed, 2 rounds, 4 methods."""
  config = tcga_brca.get_config(variant)
  config.name = 'tcga_brca_compare'
  config.algorithm.proximal_strength = 0.1  # FLamby's FedProx mu.
  config.algorithm.client_learning_rate = 0.03
  config.study = ml_collections.ConfigDict()
  config.study.seeds = 5
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
  config.study.centralized_steps = 0  # 0: as many samples as a federated run sees.
  config.study.finetune_epochs = 5
  config.study.bootstrap_samples = 1000
  if variant == 'smoke':
    config.study.seeds = 1
    config.study.methods = ('local', 'pooled', 'fedavg', 'fedavg+finetune')
    config.study.bootstrap_samples = 100
  return config
