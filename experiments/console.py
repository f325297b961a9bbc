"""What the binaries show on the console: progress lines, warnings, and errors as one line.

By default a bad shard, config or deployment prints one line (`ShardError:
hospital 'beta', file ..., column 'a', row 2: ...`) and the binary exits with
status 1; INFO lines (TFF's checkpoint messages among them) go to the run's log
file, and only warnings reach the console beside the progress lines. With
`--verbosity` given, logging goes to the console as absl does by default and
errors keep their tracebacks.
"""

import os
import sys

from absl import app, flags, logging

from tff_med.errors import UserError

EXIT_USER_ERROR = 1
LOG_FILE = 'log.txt'  # A run's INFO logging, in its workdir.


def verbose() -> bool:
  """True when the user asked for absl's own console logging (`--verbosity=N`)."""
  return flags.FLAGS['verbosity'].present


def log_to_workdir(workdir: str) -> str | None:
  """Sends INFO logging to `workdir`'s log file and keeps warnings on the console.

  Returns the log file's path, or None under `--verbosity` (console logging kept).
  """
  if verbose():
    return None
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOG_FILE)
  # Open for the rest of the process: absl writes every later record to it.
  logging.get_absl_handler().python_handler.stream = open(path, 'a')
  flags.FLAGS.stderrthreshold = 'warning'
  return path


def warnings_only() -> None:
  """Keeps INFO logging (TFF's compiler chatter) off the console, unless `--verbosity` is given."""
  if not verbose():
    logging.set_verbosity(logging.WARNING)


def run(main) -> None:
  """`app.run(main)`, printing a `UserError` as one line and exiting non-zero."""

  def guarded(argv):
    try:
      return main(argv)
    except UserError as e:
      if verbose():
        raise
      print(f'{type(e).__name__}: {e}', file=sys.stderr)
      print('(run with --verbosity=1 to see the traceback)', file=sys.stderr)
      sys.exit(EXIT_USER_ERROR)

  app.run(guarded)
