r"""Export the plan of a remote run: the computations it will send, for hospitals to approve.

  uv run python -m experiments.plan --config=configs/heart_disease.py \
      --config.deployment.workers=cleveland=HOST:PORT,... --out=plans/heart

Writes OUT/summary.md (for the data steward: model, algorithm, columns read,
privacy, what leaves the hospital per round), OUT/plan.json (the same, with
every computation's fingerprint) and OUT/computations/. Send OUT to each
hospital; each approves it with `experiments.approve_plan`. Set
`--config.deployment.plan=OUT` on the coordinator's run to be told, before
connecting, if the run differs from it.
"""

import tensorflow  # noqa: F401  (before app.run; see experiments/train.py)
from absl import app, flags
from ml_collections import config_flags

from experiments import console

from tff_med.deployment import fingerprint, plan

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Path to an experiment config.')
_OUT = flags.DEFINE_string('out', None, 'Directory to write the plan to.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  console.warnings_only()
  exported = plan.export_plan(_CONFIG.value, _OUT.value)
  n = len(exported.fingerprints)
  print(
    f'plan {exported.plan_id}: {n} computations ({fingerprint.short(exported.fingerprints[0])}, '
    f'...); read {_OUT.value}/{plan.SUMMARY_FILE}, then send {_OUT.value} to each hospital'
  )


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'out'])
  console.run(main)
