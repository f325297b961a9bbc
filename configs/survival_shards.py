"""A federated Cox model on your own hospitals' survival shards (`<root>/<hospital>/{train,test}.csv`).

Name the event column (1 = event observed, 0 = censored) and the time column
(time to event or censoring, non-negative, in days for the Kaplan–Meier settings):

  uv run python -m experiments.train --config=configs/survival_shards.py \
      --config.data.root=DIR --config.data.event=COLUMN --config.data.time=COLUMN --workdir=OUT

What it runs: a linear Cox proportional-hazards model (`model.name=mlp` for an MLP
risk model), the Cox partial likelihood with Breslow ties, FedAvg, 15 rounds of
100 local steps of batch 8, features standardized federatedly. Reports Harrell's
C-index per hospital and on the union of test sets. Every other field is as in
`configs/csv_shards.py`, including the missing-value policies (`data.missing`);
each hospital's shards are checked as classification shards are, and a
negative or missing time, an event outside {0, 1} or a training shard without
any event is named with its hospital, file, column and row.
`uv run python -m experiments.kaplan_meier --config=configs/survival_shards.py
--config.data.root=DIR ...` draws the federated Kaplan–Meier curves.
"""

import ml_collections

from configs import csv_shards, tcga_brca


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the config; `variant` 'smoke' makes a 2-round run."""
  config = csv_shards.get_config(variant)
  survival = tcga_brca.get_config(variant)
  config.name = 'survival_shards'
  config.data.label = ''
  config.data.event = ml_collections.config_dict.placeholder(str)
  config.data.time = ml_collections.config_dict.placeholder(str)
  config.data.batch_size = survival.data.batch_size
  config.model.name = survival.model.name
  config.algorithm.client_learning_rate = survival.algorithm.client_learning_rate
  config.training.stopping.metric = survival.training.stopping.metric
  config.survival = survival.survival
  return config
