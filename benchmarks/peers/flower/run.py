r"""Flower's simulation engine on a job exported by `benchmarks/flower_peer.py`.

Runs in this directory's own environment (Flower 1.23, the newest whose
protobuf range admits tensorflow 2.14.1; Flower 1.42 needs protobuf >= 5):

  uv run --project benchmarks/peers/flower python benchmarks/peers/flower/run.py \
      --job=JOB.npz --out=OUT.npz

The job file holds the Keras model (JSON and initial weights), each hospital's
standardized arrays, the rows tff_med's dataset takes in each round, and the
local training plan. Each round every hospital starts from the global weights,
runs `model.fit` over the same batches tff_med uses, and Flower's FedAvg averages the
results weighted by the examples processed, as tff_med's FedAvg does. Written
as the Flower documentation writes a Keras `NumPyClient`, with one improvement
a careful user would make: each simulated process keeps its compiled models
between rounds instead of rebuilding them in `client_fn`.

OUT.npz gets the final weights (`w0`, `w1`, ...) and `round_seconds`: for each
round, from the strategy's `configure_fit` to the end of its `aggregate_fit`.
"""

import argparse
import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import flwr  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from flwr.client import ClientApp, NumPyClient  # noqa: E402
from flwr.common import Context, ndarrays_to_parameters, parameters_to_ndarrays  # noqa: E402
from flwr.server import ServerApp, ServerAppComponents, ServerConfig  # noqa: E402
from flwr.server.strategy import FedAvg  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

_MODELS = {}  # (job file, hospital index) -> compiled Keras model, per simulated process.


def _job(path):
  with np.load(path, allow_pickle=False) as f:
    return {k: f[k] for k in f.files}


def training_dataset(x, y, rows, batch_size):
  """The round's batches: the rows tff_med's dataset takes (`order_i` in the job), in order."""
  return tf.data.Dataset.from_tensor_slices((x[rows], y[rows])).batch(batch_size)


class HospitalClient(NumPyClient):
  """One hospital: local SGD steps with `model.fit` from the global weights."""

  def __init__(self, path, index):
    self.job = _job(path)
    self.index = index
    key = (path, index)
    if key not in _MODELS:
      model = tf.keras.models.model_from_json(str(self.job['model_json']))
      model.compile(
        optimizer=tf.keras.optimizers.SGD(float(self.job['learning_rate'])),
        loss=tf.keras.losses.BinaryCrossentropy(),
      )
      _MODELS[key] = model
    self.model = _MODELS[key]

  def fit(self, parameters, config):
    self.model.set_weights(parameters)
    steps, batch = int(self.job['local_steps']), int(self.job['batch_size'])
    rows = self.job[f'order_{self.index}'][int(config['round']) - 1]
    x, y = self.job[f'x_train_{self.index}'], self.job[f'y_train_{self.index}']
    self.model.fit(training_dataset(x, y, rows, batch), epochs=1, verbose=0)
    return self.model.get_weights(), steps * batch, {}


class TimedFedAvg(FedAvg):
  """FedAvg that records each round's time and keeps the last global weights."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.round_seconds = []
    self.final = None
    self._began = None

  def configure_fit(self, server_round, parameters, client_manager):
    self._began = time.perf_counter()
    return super().configure_fit(server_round, parameters, client_manager)

  def aggregate_fit(self, server_round, results, failures):
    if failures:
      raise RuntimeError(f'round {server_round}: {len(failures)} hospitals failed: {failures}')
    parameters, metrics = super().aggregate_fit(server_round, results, failures)
    self.round_seconds.append(time.perf_counter() - self._began)
    self.final = parameters_to_ndarrays(parameters)
    return parameters, metrics


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--job', required=True, help='Job file from benchmarks/flower_peer.py.')
  parser.add_argument('--out', required=True, help='Where to write weights and round times.')
  args = parser.parse_args()
  job = _job(args.job)
  hospitals = int(job['num_hospitals'])
  strategy = TimedFedAvg(
    fraction_fit=1.0,
    fraction_evaluate=0.0,
    min_fit_clients=hospitals,
    min_available_clients=hospitals,
    initial_parameters=ndarrays_to_parameters(
      [job[f'w{i}'] for i in range(int(job['num_weights']))]
    ),
    on_fit_config_fn=lambda server_round: {'round': server_round},
  )

  def client_fn(context: Context):
    return HospitalClient(args.job, int(context.node_config['partition-id'])).to_client()

  def server_fn(context: Context):
    del context
    return ServerAppComponents(strategy=strategy, config=ServerConfig(int(job['rounds'])))

  began = time.perf_counter()
  run_simulation(
    server_app=ServerApp(server_fn=server_fn),
    client_app=ClientApp(client_fn=client_fn),
    num_supernodes=hospitals,
    backend_config={'client_resources': {'num_cpus': 1, 'num_gpus': 0.0}},
  )
  total = time.perf_counter() - began
  if strategy.final is None or len(strategy.round_seconds) != int(job['rounds']):
    raise SystemExit(f'Flower ran {len(strategy.round_seconds)} of {int(job["rounds"])} rounds')
  np.savez(
    args.out,
    round_seconds=np.asarray(strategy.round_seconds),
    total_seconds=total,
    flower_version=flwr.__version__,
    **{f'w{i}': w for i, w in enumerate(strategy.final)},
  )


if __name__ == '__main__':
  main()
