"""A federated linear Cox model on Fed-TCGA-BRCA: survival of breast-cancer patients in six regions.

What it runs: FLamby's Fed-TCGA-BRCA baseline (a linear Cox proportional-hazards
model, the Cox partial likelihood with Breslow ties, batch 8, 100 local SGD steps
per hospital per round), FedAvg, 15 rounds, on the embedded data (1,088 TCGA
patients, split exactly by FLamby's `fold2`; written to `data/tcga_brca/` on
first use). Features are standardized with federation-wide statistics computed
by a TFF computation. Reports Harrell's C-index per region and on the union of
test sets.

  uv run python -m experiments.train --config=configs/tcga_brca.py
  uv run python -m experiments.train --config=configs/tcga_brca.py:smoke   # 2 rounds
  uv run python -m experiments.kaplan_meier --config=configs/tcga_brca.py  # survival curves

Data: open-access TCGA clinical data (NCI Genomic Data Commons data access
policy; do not attempt to identify participants), as preprocessed by FLamby
(du Terrail et al., NeurIPS 2022; MIT licence); provenance in
`tff_med/data/fed_tcga_brca/README.md`.
"""

import ml_collections

from configs import heart_disease


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the config; `variant` 'smoke' makes a 2-round run for tests."""
  config = heart_disease.get_config(variant)
  config.name = 'tcga_brca'
  config.data.source = 'tcga_brca'
  config.data.root = 'data/tcga_brca'
  config.data.label = ''
  config.data.event = 'E'
  config.data.time = 'T'
  config.data.batch_size = 8
  config.model.name = 'logistic_regression'  # One linear layer: a Cox model on survival data.
  config.algorithm.client_learning_rate = 0.03  # benchmarks/README.md, "Survival learning rates".
  config.training.stopping.metric = 'eval/all/cindex'
  # experiments.kaplan_meier: bins from 30 days up (doubling until every published bin
  # holds at least 5 patients), follow-up shown to 5 years.
  config.survival = ml_collections.ConfigDict()
  config.survival.km_bin_days = 30.0
  config.survival.km_min_count = 5
  config.survival.km_horizon = 1826.0
  return config
