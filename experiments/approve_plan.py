r"""Run at a hospital, by its data steward: approve a plan, so this hospital's gate runs it.

  uv run python -m experiments.approve_plan --plan=PLAN_DIR --approved=APPROVED_DIR \
      [--data_root=DIR] [--yes]

Checks the plan (complete, not edited, exported with the versions installed
here), checks that this hospital's shards under DIR have every column it reads,
prints its summary and asks for confirmation (--yes skips the question), then
records it in APPROVED_DIR, the directory given to `experiments.hospital_worker
--approved`. A running worker picks the new plan up at its next unknown
computation. To revoke a plan, delete its record and restart the worker.
"""

import sys

import tensorflow  # noqa: F401  (before app.run; see experiments/train.py)
from absl import app, flags

from experiments import console


from tff_med.deployment import approvals, npz_view, plan, summary
from tff_med.errors import ConfigError

_PLAN = flags.DEFINE_string('plan', None, 'The plan directory (experiments.plan --out).')
_APPROVED = flags.DEFINE_string('approved', None, 'This hospital’s directory of approved plans.')
_DATA_ROOT = flags.DEFINE_string('data_root', '', 'This hospital’s shards, to check the columns.')
_YES = flags.DEFINE_bool('yes', False, 'Approve without asking.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  console.warnings_only()
  checked = plan.load_plan(_PLAN.value)
  if _DATA_ROOT.value:
    served = npz_view.check_shards(_DATA_ROOT.value)
    approvals.check_columns(checked, _DATA_ROOT.value, served)
  print(summary.render(checked.content))
  if not _YES.value:
    if not sys.stdin.isatty():
      raise ConfigError('not approved: confirm at a terminal, or pass --yes')
    answer = input(f'Approve plan {checked.plan_id} for this hospital? Type "yes": ')
    if answer.strip() != 'yes':
      raise ConfigError(f'plan {checked.plan_id} not approved')
  path = approvals.approve(_PLAN.value, _APPROVED.value)
  print(f'approved plan {checked.plan_id}: recorded in {path}')


if __name__ == '__main__':
  flags.mark_flags_as_required(['plan', 'approved'])
  console.run(main)
