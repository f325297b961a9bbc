r"""Each study, as a user runs it, on TFF's engine and on the studies' default, side by side.

  uv run python -m benchmarks.studies [--studies=compare,privacy,robustness] [--variant=smoke] \
      [--out=DIR]

For each study it runs the study's command twice in fresh processes (import and
worker start included, as a user waits for them), with
`--config.runtime.engine=tff` and with the config's own `auto`, and prints both
wall times, their ratio, and whether the two reports' tables (every line of the
study's Markdown report that is a table row, at the report's precision) are the
same. With --out, both runs' outputs are kept in DIR/STUDY/{tff,auto}. Targets (issue #19, 2 cores): comparison under 60 s, privacy and
robustness under 90 s each, with the same tables. Exits 1 if a table differs.
"""

import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

# study: (experiments module, config file, the report whose table rows are compared)
STUDIES = {
  'compare': ('experiments.compare', 'configs/heart_disease_compare.py', 'summary.md'),
  'privacy': ('experiments.privacy', 'configs/heart_disease_privacy.py', 'privacy.md'),
  'robustness': ('experiments.robustness', 'configs/heart_disease_robustness.py', 'robustness.md'),
}
_STUDIES = flags.DEFINE_list('studies', list(STUDIES), 'Studies to run.')
_VARIANT = flags.DEFINE_string('variant', '', "Config variant ('smoke' for a quick check).")
_OUT = flags.DEFINE_string('out', '', 'Keep the runs here (default: a temporary directory).')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(study: str, engine: str | None, workdir: str) -> tuple[float, list[str]]:
  """(wall seconds, the report's table rows) of one study run in a fresh process."""
  module, config, report = STUDIES[study]
  config_arg = f'--config={config}' + (f':{_VARIANT.value}' if _VARIANT.value else '')
  command = [sys.executable, '-m', module, config_arg, f'--workdir={workdir}']
  if engine:
    command.append(f'--config.runtime.engine={engine}')
  began = time.monotonic()
  done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
  seconds = time.monotonic() - began
  if done.returncode:
    raise RuntimeError(f'{" ".join(command)} failed:\n{done.stderr[-3000:]}')
  with open(os.path.join(workdir, report)) as f:
    return seconds, [line for line in f.read().splitlines() if line.startswith('|')]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  print(f'{"study":12s} {"tff s":>8s} {"auto s":>8s} {"ratio":>7s}  same table')
  differ = False
  for study in _STUDIES.value:
    with tempfile.TemporaryDirectory() as tmp:
      runs = os.path.join(os.path.abspath(_OUT.value) if _OUT.value else tmp, study)
      tff_seconds, tff_table = _run(study, 'tff', os.path.join(runs, 'tff'))
      auto_seconds, auto_table = _run(study, None, os.path.join(runs, 'auto'))
    same = tff_table == auto_table and bool(tff_table)
    differ |= not same
    ratio = tff_seconds / auto_seconds
    print(f'{study:12s} {tff_seconds:8.1f} {auto_seconds:8.1f} {ratio:6.1f}x  {same}', flush=True)
  sys.exit(1 if differ else 0)


if __name__ == '__main__':
  app.run(main)
