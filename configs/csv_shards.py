"""FedAvg on your own hospitals' CSV shards (`<root>/<hospital>/{train,test}.csv`).

Set where the shards are and which column is the label:

  uv run python -m experiments.train --config=configs/csv_shards.py \
      --config.data.root=DIR --config.data.label=COLUMN --workdir=OUT

Every other numeric column is a feature unless you list them
(`--config.data.features="('age','bmi')"`). Binary 0/1 labels by default; for
K classes labelled 0..K-1 add `--config.data.num_classes=K`. Everything else
(model, algorithm, rounds) is as in `configs/heart_disease.py` and can be
overridden the same way, e.g. `--config.model.name=mlp --config.training.rounds=50`.
"""

import ml_collections

from configs import heart_disease


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the config; `variant` 'smoke' makes a 2-round run."""
  config = heart_disease.get_config(variant)
  config.name = 'csv_shards'
  config.data.source = 'csv'
  config.data.root = ml_collections.config_dict.placeholder(str)
  config.data.label = ml_collections.config_dict.placeholder(str)
  config.data.scaling = 'federated'
  config.data.batch_size = 16
  return config
