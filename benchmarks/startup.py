r"""Where the time from the command to the first round goes.

  uv run python -m benchmarks.startup

Runs, in a fresh Python process, the steps `experiments.train` takes before its
first round on the heart config, timing each: importing TensorFlow, TFF and
tff_med; loading and validating the shards and standardizing them (a TFF call,
so it includes starting the TFF worker); building the learning process;
`initialize()`; building the evaluator and the round-0 evaluation; the first
round. Also times the whole `experiments.train` smoke command end to end.
"""

import subprocess
import sys
import tempfile
import time

CHILD = r"""
import os, time
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
t = [time.perf_counter()]
marks = []
def mark(name):
  t.append(time.perf_counter()); marks.append((name, t[-1] - t[-2]))
import tensorflow as tf; mark('import tensorflow')
import tensorflow_federated as tff; mark('import tensorflow_federated')
from configs import heart_disease
from tff_med import runtime
from tff_med.clients import client_data, resident
from tff_med.learning import evaluation, task as task_lib
from tff_med.run import simulated
mark('import tff_med')
tf.get_logger().setLevel('ERROR')
config = heart_disease.get_config()
with runtime.local_runtime():
  task = task_lib.load_task(config); mark('load shards + federated scaling (starts the worker)')
  with resident.resident_shards(task.data) as kept:
    mark('write the shards for the worker')
    process, inputs_fn = simulated.process_and_inputs(
      config, task, client_data.LocalTraining(4, 100), None, None, kept)
    mark('build learning process')
    state = process.initialize(); mark('initialize()')
    evaluator = evaluation.FederatedEvaluator.resident(task, kept)
    evaluator.evaluate(process.get_model_weights(state)); mark('build evaluator + round-0 evaluation')
    process.next(state, inputs_fn(1, task.data.hospitals))
    mark('first round')
for name, seconds in marks:
  print(f'{name:55s} {seconds:6.2f} s')
print(f'{"total":55s} {t[-1] - t[0]:6.2f} s')
"""


def main():
  print('Steps before the first round (fresh process):')
  subprocess.run([sys.executable, '-c', CHILD], check=True)
  began = time.perf_counter()
  subprocess.run(
    [
      sys.executable,
      '-m',
      'experiments.train',
      '--config=configs/heart_disease.py:smoke',
      f'--workdir={tempfile.mkdtemp(prefix="startup_")}',
    ],
    check=True,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  print(
    f'{"experiments.train smoke (2 rounds, 3 evaluations), end to end":55s} '
    f'{time.perf_counter() - began:6.2f} s'
  )


if __name__ == '__main__':
  main()
