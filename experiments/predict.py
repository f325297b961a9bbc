r"""Scores new patients with a trained run's exported model.

  uv run python -m experiments.predict --workdir=runs/heart_disease \
      --input=patients.csv --output=scores.csv [--hospital=cleveland]

The input needs the model's feature columns (any order, extra columns are
copied through); `--hospital` is needed when the run standardized per hospital.
"""

import tensorflow  # noqa: F401  (before app.run; see experiments/train.py)
from absl import app, flags

from experiments import console
from tff_med.run import export

_WORKDIR = flags.DEFINE_string('workdir', None, 'A finished training run.', required=True)
_INPUT = flags.DEFINE_string('input', None, 'CSV of patients to score.', required=True)
_OUTPUT = flags.DEFINE_string('output', None, 'Where to write the scores.', required=True)
_HOSPITAL = flags.DEFINE_string('hospital', None, 'Hospital the patients come from.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  n = export.score_csv(_WORKDIR.value, _INPUT.value, _OUTPUT.value, _HOSPITAL.value)
  print(f'Scored {n} patients -> {_OUTPUT.value}')


if __name__ == '__main__':
  console.run(main)
