"""The two jobs the speed benchmarks run: heart (overhead-bound) and cnn (compute-bound).

Each returns `(task, config)`: a `tff_med.learning.task.Task` and the experiment config
whose `algorithm` and `data` blocks say how it trains.
"""

import contextlib

import numpy as np

from configs import heart_disease
from tff_med import runtime
from tff_med.clients import client_data, resident
from tff_med.data import shards
from tff_med.learning import fused_run
from tff_med.learning import task as task_lib
from tff_med.run import simulated


def heart():
  """The main job: the 4 heart-disease hospitals, logistic regression, 100 steps of 4."""
  config = heart_disease.get_config()
  return task_lib.load_task(config), config


def cnn():
  """Synthetic 28x28 'images' at 4 hospitals of 512 rows; small_cnn, 16 steps of batch 32."""
  rng = np.random.RandomState(0)
  direction = rng.normal(size=(28, 28, 1)).astype(np.float32)

  def split(rows):
    x = rng.normal(size=(rows, 28, 28, 1)).astype(np.float32)
    y = (np.tensordot(x, direction, axes=3) > 0).astype(np.int32)
    return x, y

  hospital_shards = []
  for i in range(4):
    (x_train, y_train), (x_test, y_test) = split(512), split(64)
    hospital_shards.append(
      shards.HospitalShard(f'site_{i}', x_train, y_train, x_test, y_test, files=['synthetic'])
    )
  raw = shards.FederatedShards(
    hospital_shards, [f'pixel_{i}' for i in range(28 * 28)], 'label', num_classes=2
  )
  config = heart_disease.get_config()
  config.model.name = 'small_cnn'
  config.data.batch_size = 32
  config.data.local_steps = 16
  task = task_lib.create_task(
    raw, model_config=config.model.to_dict(), scaling_mode='none', seed=config.seed
  )
  return task, config


JOBS = {'heart': heart, 'cnn': cnn}
# The fused engine's cases (config changes), as fused_equality and fused_overhead measure them.
CASES = {
  'fedavg': {},
  'fedavgm': {'name': 'fedavgm'},
  'fedprox': {'name': 'fedprox', 'proximal_strength': 0.1},
  'fedadam': {'name': 'fedadam'},
  'fedyogi': {'name': 'fedyogi'},
  'fedadagrad': {'name': 'fedadagrad'},
  'client_momentum': {'client_momentum': 0.9},
  'client_adam': {'client_optimizer': 'adam', 'client_learning_rate': 0.01},
  'patient_dp': {'privacy': {'level': 'patient', 'noise_multiplier': 1.0}},
  'mlp_dropout': {'model': {'name': 'mlp', 'dropout': 0.3}},
}


def with_case(config, change: dict):
  """A copy of `config` with a case of CASES applied (its 'privacy' and 'model' blocks, the
  rest to `algorithm`)."""
  config = config.copy_and_resolve_references()
  change = dict(change)
  config.privacy.update(change.pop('privacy', {}))
  config.model.update(change.pop('model', {}))
  config.algorithm.update(change)
  return config


@contextlib.contextmanager
def loaded(name: str):
  """Yields (task, config, kept): job `name` under a local TFF worker this block owns.

  `kept` is the job's shards written for that worker (`data.resident.ResidentShards`).
  """
  with runtime.local_runtime():
    task, config = JOBS[name]()
    with resident.resident_shards(task.data) as kept:
      yield task, config, kept


def plan(config) -> client_data.LocalTraining:
  """The job's local training plan."""
  return client_data.LocalTraining(config.data.batch_size, config.data.local_steps)


def resident_process(task, config, kept):
  """tff_med's process as `experiment.train` builds it, and round_num -> its client inputs.

  `kept` is the job's `data.resident.ResidentShards`.
  """
  process, inputs_fn = simulated.process_and_inputs(config, task, plan(config), None, None, kept)
  return process, lambda round_num: inputs_fn(round_num, task.data.hospitals)


def fused_process(task, config):
  """tff_med's fused engine (`runtime.engine='fused'`) and round_num -> its datasets.

  Raises:
    ConfigError: The job's model is not one the fused engine runs (cnn).
  """
  process, datasets = fused_run.process_and_datasets(config, task, plan(config))
  return process, lambda round_num: datasets(round_num, task.data.hospitals)


def datasets_fn(task, config):
  """round_num -> every hospital's training datasets for that round, built in this process.

  The references train on these; tff_med's worker builds the same batches from
  `resident_process`'s inputs.
  """
  train = client_data.client_data(task.data, 'train')
  sizes = {s.hospital: len(s.y_train) for s in task.data.shards}
  return lambda round_num: client_data.round_datasets(
    train, sizes, task.data.hospitals, plan(config), seed=config.seed, round_num=round_num
  )
