"""Shards kept for the worker give exactly the batches, and so the weights, of shipped datasets."""

import os
import stat

import numpy as np
import pytest
import tensorflow_federated as tff

from configs import heart_disease
from tff_med import algorithms, runtime
from tff_med import task as task_lib
from tff_med.data import client_data, resident, shards


def _image_shards(num_classes: int) -> shards.FederatedShards:
  rng = np.random.RandomState(1)

  def split(rows):
    x = rng.normal(size=(rows, 6, 6, 1)).astype(np.float32)
    return x, rng.randint(num_classes, size=rows).astype(np.int32)

  hospitals = []
  for name, rows in [('north', 23), ('south', 9), ('east', 14)]:
    (x_train, y_train), (x_test, y_test) = split(rows), split(5)
    hospitals.append(shards.HospitalShard(name, x_train, y_train, x_test, y_test, files=['mem']))
  features = [f'pixel_{i}' for i in range(36)]
  return shards.FederatedShards(hospitals, features, 'label', num_classes=num_classes)


def _weights_after_rounds(process, inputs_fn, hospitals, rounds=2):
  state = process.initialize()
  for round_num in range(1, rounds + 1):
    state = process.next(state, inputs_fn(round_num, hospitals)).state
  return [np.asarray(w) for w in process.get_model_weights(state).trainable]


@pytest.mark.parametrize(
  'model, num_classes, plan',
  [
    ('small_cnn', 3, client_data.LocalTraining(batch_size=4, local_steps=5)),
    ('mlp', 2, client_data.LocalTraining(batch_size=3, local_epochs=2)),
  ],
)
def test_resident_rounds_end_with_the_weights_of_shipped_datasets(model, num_classes, plan):
  config = heart_disease.get_config()
  config.model.name = model
  task = task_lib.create_task(
    _image_shards(num_classes), model_config=config.model.to_dict(), scaling_mode='none', seed=3
  )
  hospitals = ['south', 'north']  # Not every hospital, and not in shard order.
  train = client_data.client_data(task.data, 'train')
  sizes = {s.hospital: len(s.y_train) for s in task.data.shards}
  with runtime.local_runtime(), resident.resident_shards(task.data) as kept:
    process = algorithms.build_learning_process(task.model_fn(), config.algorithm, 3)
    shipped = _weights_after_rounds(
      process,
      lambda r, hs: client_data.round_datasets(train, sizes, hs, plan, seed=7, round_num=r),
      hospitals,
    )
    composed = tff.simulation.compose_dataset_computation_with_learning_process(
      kept.train_computation(plan), process
    )
    read_in_worker = _weights_after_rounds(
      composed, lambda r, hs: kept.train_inputs(hs, seed=7, round_num=r), hospitals
    )
  for a, b in zip(shipped, read_in_worker, strict=True):
    np.testing.assert_array_equal(a, b)


def test_directory_is_private_and_removed_even_after_an_error():
  data = _image_shards(2)
  with pytest.raises(RuntimeError, match='boom'):
    with resident.resident_shards(data) as kept:
      directory = os.path.dirname(kept.test_inputs()['north'])
      assert os.path.basename(directory).startswith(resident.DIRECTORY_PREFIX)
      assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
      assert len(os.listdir(directory)) == 4 * len(data.shards)  # x and y of train and test.
      raise RuntimeError('boom')
  assert not os.path.exists(directory)
