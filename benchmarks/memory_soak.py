r"""Does memory stay flat over a long run? RSS after round 50 vs after round 1000.

  uv run python -m benchmarks.memory_soak [--rounds=1000]

Runs the heart config (`configs/heart_disease.py`, evaluation every 50 rounds,
checkpoint every 100 unless the flags say otherwise) through `experiment.train` and samples the resident
memory of the Python process and of its TFF worker (TFF users report growth of
1 GB to 50 GB over 500 rounds, TFF issue #4590), and the round time, at rounds
50 and `rounds`. Target: RSS at the end within 10% of RSS at round 50.
"""

import ctypes
import os
import re
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow  # noqa: E402, F401  (before app.run; see experiments/train.py)
from absl import app, flags  # noqa: E402

from benchmarks import process_stats  # noqa: E402
from configs import heart_disease  # noqa: E402
from tff_med import experiment  # noqa: E402

_ROUNDS = flags.DEFINE_integer('rounds', 1000, 'Rounds to run.')
_EVAL_EVERY = flags.DEFINE_integer('eval_every', 50, 'Evaluate every this many rounds.')
_CHECKPOINT_EVERY = flags.DEFINE_integer('checkpoint_every', 100, 'Checkpoint every this many.')
_MALLOC_TRIM_EVERY = flags.DEFINE_integer(
  'malloc_trim_every', 0, "If > 0, call glibc's malloc_trim(0) every this many rounds."
)
SAMPLES = (50, 100, 250, 500, 750)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  tensorflow.get_logger().setLevel('ERROR')
  config = heart_disease.get_config()
  config.training.rounds = _ROUNDS.value
  config.training.eval_every = _EVAL_EVERY.value
  config.training.checkpoint_every = _CHECKPOINT_EVERY.value
  samples = {}
  round_re = re.compile(r'^round (\d+)/\d+ +([\d.]+)s')
  began = time.perf_counter()

  trim = ctypes.CDLL('libc.so.6').malloc_trim if _MALLOC_TRIM_EVERY.value > 0 else None

  def sample(line):
    match = round_re.match(line)
    if trim and match and int(match[1]) % _MALLOC_TRIM_EVERY.value == 0:
      trim(0)
    if match and (int(match[1]) in SAMPLES or int(match[1]) == _ROUNDS.value):
      samples[int(match[1])] = (*process_stats.rss_mib(), float(match[2]))

  with tempfile.TemporaryDirectory() as workdir:
    experiment.train(config, workdir, print_fn=sample)
  print(f'{_ROUNDS.value} rounds in {time.perf_counter() - began:.0f} s')
  print(f'{"round":>6s} {"python RSS MiB":>15s} {"TFF worker RSS MiB":>19s} {"round s":>8s}')
  for r, (python, worker, seconds) in sorted(samples.items()):
    print(f'{r:6d} {python:15.0f} {worker:19.0f} {seconds:8.3f}')
  first, last = samples[min(samples)], samples[max(samples)]
  total_first, total_last = first[0] + first[1], last[0] + last[1]
  print(
    f'RSS (python + worker) at round {max(samples)} / round {min(samples)}: '
    f'{total_last / total_first:.3f}'
  )


if __name__ == '__main__':
  app.run(main)
