"""The final global model as a plain Keras file plus the preprocessing it needs.

`<workdir>/model/model.keras` loads with `tf.keras.models.load_model` (once
`tff_med.learning.seeded_dropout` is imported, as here, for a model with dropout) and
predicts probabilities from standardized features; `preprocessing.json` holds
the feature order, label, classes and scaling statistics. `score_csv` applies
both to a CSV of new patients.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import tensorflow as tf

from tff_med.data import csv_reader
from tff_med.data.scaling import Standardizer
from tff_med.data.targets import SURVIVAL_OUTPUTS
from tff_med.errors import ConfigError, ShardError
from tff_med.learning import seeded_dropout  # noqa: F401  (registers its layer for loading)
from tff_med.run import outputs

MODEL_FILE = 'model.keras'
PREPROCESSING_FILE = 'preprocessing.json'


def export_model(
  workdir: str,
  keras_model: tf.keras.Model,
  *,
  feature_names: list[str],
  label: str,
  num_classes: int,
  standardizer: Standardizer,
) -> str:
  """Writes the model and its preprocessing; returns the model directory."""
  directory = os.path.join(workdir, outputs.EXPORT_DIR)
  os.makedirs(directory, exist_ok=True)
  keras_model.save(os.path.join(directory, MODEL_FILE))
  with open(os.path.join(directory, PREPROCESSING_FILE), 'w') as f:
    json.dump(
      {
        'feature_names': feature_names,
        'label': label,
        'num_classes': num_classes,
        'scaling': standardizer.to_json(),
      },
      f,
      indent=2,
    )
  return directory


def load_exported(workdir: str):
  """Returns (keras model, preprocessing dict) saved by `export_model`."""
  directory = os.path.join(workdir, outputs.EXPORT_DIR)
  path = os.path.join(directory, MODEL_FILE)
  if not os.path.isfile(path):
    raise ConfigError(f'no exported model at {path}: did the training run finish?')
  with open(os.path.join(directory, PREPROCESSING_FILE)) as f:
    preprocessing = json.load(f)
  return tf.keras.models.load_model(path, compile=False), preprocessing


def _scaling_for(preprocessing: dict, hospital: str | None):
  scaling = preprocessing['scaling']
  hospitals = sorted(scaling['mean'])
  if scaling['mode'] == 'per_hospital' and hospital is None:
    raise ConfigError(
      'this model standardizes per hospital: say which hospital the patients '
      f'come from (one of {hospitals})'
    )
  key = hospital if hospital is not None else hospitals[0]
  if key not in scaling['mean']:
    raise ConfigError(f'unknown hospital {hospital!r}; the model knows {hospitals}')
  return np.asarray(scaling['mean'][key]), np.asarray(scaling['std'][key])


def score_csv(workdir: str, input_path: str, output_path: str, hospital: str | None = None) -> int:
  """Scores every row of `input_path`; writes its columns plus risk columns.

  Returns:
    The number of rows scored.

  Raises:
    ShardError: A feature column is missing, or a value is missing, not a
      number or too large.
    ConfigError: No finished run in `workdir`, an unknown or missing
      `hospital`, or no directory for `output_path`.
  """
  directory = os.path.dirname(os.path.abspath(output_path))
  if not os.path.isdir(directory):
    raise ConfigError(f'--output {output_path}: directory {directory} does not exist')
  model, preprocessing = load_exported(workdir)
  mean, std = _scaling_for(preprocessing, hospital)
  table = csv_reader.read_table(input_path, None)
  features = preprocessing['feature_names']
  missing = [f for f in features if f not in table.columns]
  if missing:
    raise ShardError(f'columns {missing} are missing; the model needs {features}', file=input_path)
  x = np.stack([csv_reader.numeric_column(table, f, None) for f in features], 1)
  if np.isnan(x).any():
    row, col = np.argwhere(np.isnan(x))[0]
    raise ShardError('value is missing', file=input_path, column=features[col], row=int(row) + 1)
  probabilities = model.predict(((x - mean) / std).astype(np.float32), verbose=0)
  names = {
    SURVIVAL_OUTPUTS: ['risk_score'],  # A Cox model's log hazard ratio: higher, earlier events.
    2: ['risk'],
  }.get(
    preprocessing['num_classes'],
    [f'probability_class_{k}' for k in range(preprocessing['num_classes'])],
  )
  with open(output_path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(table.columns + names)
    for cells, p in zip(table.cells, probabilities, strict=True):
      writer.writerow(cells + [f'{v:.6f}' for v in p])
  return table.num_rows
