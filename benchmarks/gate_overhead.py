r"""What a hospital's gate costs: remote heart rounds with and without it, side by side.

  uv run python -m benchmarks.gate_overhead [--rounds=12 --repeats=2]

Starts one `experiments.hospital_worker` serving the four heart hospitals (its own
process, development flag so no approval step is timed) in three set-ups, and
runs the same remote training against each, the set-ups taking turns: the coordinator talking to
the raw TFF worker directly (what the gate replaced), through the gate with the
worker on a loopback port, and through the gate with the worker in its own
network namespace (the default where Linux allows it). Prints each set-up's
median steady round (rounds 2..N) and its ratio to the direct one, then what
approval costs once: fingerprinting every computation of the plan, and
building the plan at the coordinator (`deployment.plan`'s check).
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

import tensorflow as tf
from absl import app, flags, logging

from configs import heart_disease
from tff_med import experiment, runtime
from tff_med.data import heart_disease as heart_data
from tff_med.deployment import fingerprint, plan, worker_namespace

_ROUNDS = flags.DEFINE_integer('rounds', 12, 'Rounds per run.')
_REPEATS = flags.DEFINE_integer('repeats', 2, 'Runs per set-up, the set-ups taking turns.')
HOSPITALS = ['cleveland', 'hungary', 'switzerland', 'va_long_beach']


def _start_worker(data_root: str, port: int, worker_port: int, isolation: str):
  process = subprocess.Popen(
    [
      sys.executable,
      '-m',
      'experiments.hospital_worker',
      f'--data_root={data_root}',
      f'--port={port}',
      f'--worker_port={worker_port}',
      f'--isolation={isolation}',
      '--allow_unapproved_computations',
    ],
    stdout=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
    text=True,
  )
  if 'hospital worker ready' not in process.stdout.readline():
    raise RuntimeError('the hospital worker did not start')
  return process


def _round_times(port: int, workdir: str) -> list[float]:
  config = heart_disease.get_config('smoke')
  config.training.rounds = _ROUNDS.value
  config.training.eval_every = _ROUNDS.value
  config.deployment.workers = ','.join(f'{h}=localhost:{port}' for h in HOSPITALS)
  lines = []
  experiment.train(config, workdir, print_fn=lines.append)
  # 'round 3/12    0.36s  train loss ...': the round's wall time (round 0 only evaluates).
  times = [line.split()[2] for line in lines if line.startswith('round ')]
  return [float(t[:-1]) for t in times if t.endswith('s') and t[0].isdigit()][2:]


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  tf.get_logger().setLevel('ERROR')
  setups = [('direct to the raw worker', 'none', True), ('gate, loopback port', 'none', False)]
  if worker_namespace.available():
    setups.append(('gate, worker in its own namespace', 'namespace', False))
  with tempfile.TemporaryDirectory() as tmp:
    data = heart_data.write_shards(os.path.join(tmp, 'heart'))
    times = {name: [] for name, _, _ in setups}
    for repeat in range(_REPEATS.value):
      for name, isolation, direct in setups:
        port, worker_port = runtime.free_port(), runtime.free_port()
        worker = _start_worker(data, port, worker_port, isolation)
        try:
          workdir = os.path.join(tmp, f'{name} {repeat}')
          times[name] += _round_times(worker_port if direct else port, workdir)
        finally:
          worker.terminate()
          worker.wait(60)
    medians = {name: statistics.median(t) for name, t in times.items()}
    base = medians[setups[0][0]]
    print(f'{"set-up":40s} {"steady round":>13s} {"ratio":>6s}')
    for name, seconds in medians.items():
      print(f'{name:40s} {seconds * 1000:10.0f} ms {seconds / base:6.2f}')
    config = heart_disease.get_config('smoke')
    config.deployment.workers = ','.join(f'{h}=localhost:1' for h in HOSPITALS)
    began = time.perf_counter()
    exported = plan.export_plan(config, os.path.join(tmp, 'plan'))
    built = time.perf_counter() - began
    began = time.perf_counter()
    for proto in exported.protos.values():
      fingerprint.fingerprint(proto)
    hashed = time.perf_counter() - began
  print(
    f'plan of {len(exported.protos)} computations: built and exported in {built:.1f} s; '
    f'fingerprinting all of them (what a gate does once) {hashed * 1000:.0f} ms'
  )


if __name__ == '__main__':
  app.run(main)
