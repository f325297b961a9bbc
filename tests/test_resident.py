"""Shards kept for the worker give exactly the batches, and so the weights, of shipped datasets."""

import os
import stat

import numpy as np
import pytest
import tensorflow_federated as tff

from configs import heart_disease
from tff_med.run import simulated
from tff_med import runtime
from tff_med.clients import client_data, resident
from tff_med.data import shards
from tff_med.learning import algorithms, attacks, metrics
from tff_med.learning import task as task_lib
from tff_med.learning.privacy import budget, dp_sgd, processes


def _image_shards(num_classes: int, example_shape=(6, 6, 1)) -> shards.FederatedShards:
  rng = np.random.RandomState(1)

  def split(rows):
    x = rng.normal(size=(rows, *example_shape)).astype(np.float32)
    return x, rng.randint(num_classes, size=rows).astype(np.int32)

  hospitals = []
  for name, rows in [('north', 23), ('south', 9), ('east', 14)]:
    (x_train, y_train), (x_test, y_test) = split(rows), split(5)
    hospitals.append(shards.HospitalShard(name, x_train, y_train, x_test, y_test, files=['mem']))
  features = [f'pixel_{i}' for i in range(int(np.prod(example_shape)))]
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


@pytest.mark.parametrize('kind', ['patient_dp', 'gaussian_noise'])
def test_dp_and_attacked_rounds_end_with_the_weights_of_shipped_pairs(kind):
  config = heart_disease.get_config()
  config.seed = 5
  config.model.name = 'logistic_regression'
  data = _image_shards(2, example_shape=(5,))
  task = task_lib.create_task(
    data, model_config=config.model.to_dict(), scaling_mode='none', seed=5
  )
  plan = client_data.LocalTraining(batch_size=3, local_steps=4)
  hospitals = ['south', 'east']  # Not every hospital, and not in shard order.
  train = client_data.client_data(task.data, 'train')
  sizes = {s.hospital: len(s.y_train) for s in task.data.shards}

  def datasets(round_num, round_hospitals):
    return client_data.round_datasets(
      train, sizes, round_hospitals, plan, seed=5, round_num=round_num
    )

  attack = privacy_plan = None
  if kind == 'patient_dp':
    config.privacy.level = 'patient'
    config.privacy.noise_multiplier = 0.8
    config.data.batch_size, config.data.local_steps = plan.batch_size, plan.local_steps
    privacy_plan = budget.plan(config, sizes, lambda r: hospitals)
    noise = privacy_plan.noise_multipliers

    def shipped_inputs(r, hs):
      return [
        (dp_sgd.params_dataset(noise[h], (5, r * 1000 + data.hospitals.index(h))), d)
        for h, d in zip(hs, datasets(r, hs), strict=True)
      ]
  else:
    attack = attacks.Attack(kind, ('east',), noise_std=0.5)

    def shipped_inputs(r, hs):
      return [
        (attacks.attack_dataset(attack.code(h), (5, r * 1000 + i)), d)
        for i, (h, d) in enumerate(zip(hs, datasets(r, hs), strict=True))
      ]

  with runtime.local_runtime(), resident.resident_shards(task.data) as kept:
    if privacy_plan:
      shipped_process = processes.build_private_learning_process(
        task.model_fn(), config, 3, privacy_plan, metrics.loss_fn(2, reduction='none')
      )
    else:
      shipped_process = algorithms.build_attacked_learning_process(
        task.model_fn(), config.algorithm, 3, attack
      )
    shipped = _weights_after_rounds(shipped_process, shipped_inputs, hospitals)
    read_in_worker = _weights_after_rounds(
      *simulated.process_and_inputs(config, task, plan, attack, privacy_plan, kept), hospitals
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


def test_evaluators_of_one_model_and_layout_share_a_process_and_equal_a_fresh_one(monkeypatch):
  from tff_med.learning import evaluation

  def task(seed):
    return task_lib.create_task(
      _image_shards(3, (4,)),
      model_config={'name': 'mlp', 'hidden_units': (8,)},
      scaling_mode='none',
      seed=seed,
    )

  weights = tff.learning.models.ModelWeights.from_model(task(7).keras_model())
  results = []
  with runtime.local_runtime():
    for seed, fresh in [(0, False), (1, False), (1, True)]:
      if fresh:
        monkeypatch.setattr(evaluation, '_PROCESSES', evaluation.BuildCache())
      with resident.resident_shards(task(seed).data) as kept:
        evaluator = evaluation.FederatedEvaluator.resident(task(seed), kept)
        results.append((evaluator._process, evaluator.evaluate(weights)))  # noqa: SLF001
  assert results[0][0] is results[1][0] and results[2][0] is not results[0][0]
  assert results[1][1] == results[2][1] == results[0][1]
  assert results[0][1]['all']['num_examples'] == 15
