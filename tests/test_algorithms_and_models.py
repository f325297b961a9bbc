"""Every registered algorithm and model builds and trains; unknown names list valid ones."""

import numpy as np
import pytest

from configs import heart_disease
from tests.shard_fixtures import write_shards
from tff_med import runtime
from tff_med.clients import client_data
from tff_med.data import npz_shards, shards
from tff_med.errors import ConfigError, ShardError
from tff_med.learning import algorithms, models
from tff_med.learning import task as task_lib


@pytest.fixture(scope='module')
def tiny_task(tmp_path_factory):
  root = write_shards(tmp_path_factory.mktemp('shards'))
  raw = shards.load_csv_shards(root, label='outcome')
  with runtime.local_runtime():
    return task_lib.create_task(
      raw, model_config={'name': 'mlp', 'hidden_units': (4,)}, scaling_mode='federated', seed=0
    )


def _one_round(task, algorithm_config):
  process = algorithms.build_learning_process(task.model_fn(), algorithm_config, 2)
  train = client_data.client_data(task.data, 'train')
  plan = client_data.LocalTraining(batch_size=2, local_steps=2)
  state = process.initialize()
  datasets = client_data.round_datasets(
    train, {'alpha': 4, 'beta': 3}, ['alpha', 'beta'], plan, seed=0, round_num=1
  )
  before = process.get_model_weights(state).trainable
  output = process.next(state, datasets)
  return before, process.get_model_weights(output.state).trainable, output.metrics


@pytest.mark.parametrize('name', sorted(algorithms.ALGORITHMS))
def test_each_algorithm_runs_a_round_and_moves_the_model(tiny_task, name):
  config = heart_disease.get_config().algorithm
  config.name = name
  config.proximal_strength = 0.1
  with runtime.local_runtime():
    before, after, metrics = _one_round(tiny_task, config)
  assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
  assert metrics['aggregator']['zero_weight_clients'] == 0


@pytest.mark.slow  # Two TFF processes: 9 s.
def test_tffs_fedprox_term_pushes_updates_away_from_the_global_model(tiny_task):
  """TFF 0.87 adds strength * (initial - w) to each gradient: FedProx's term with its sign
  reversed. tff_med runs TFF's FedProx as is and says so (README); this pins the behaviour."""
  config = heart_disease.get_config().algorithm
  norms = []
  for name, strength in [('fedavg', 0.0), ('fedprox', 5.0)]:
    config.name, config.proximal_strength = name, strength
    with runtime.local_runtime():
      before, after, _ = _one_round(tiny_task, config)
    norms.append(np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(after, before, strict=True))))
  assert norms[1] > norms[0]  # A proximal term would shrink the update.


@pytest.mark.parametrize('aggregator', ['median', 'trimmed_mean', 'robust'])
def test_fedavg_runs_with_each_robust_aggregator(tiny_task, aggregator):
  config = heart_disease.get_config().algorithm
  config.aggregator = aggregator
  with runtime.local_runtime():
    before, after, metrics = _one_round(tiny_task, config)
  assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
  assert metrics['aggregator']['zero_weight_clients'] == 0


@pytest.mark.parametrize('fraction', [0.5, 0.7, -0.1])
def test_trim_fraction_outside_zero_to_half_is_an_error(fraction):
  config = heart_disease.get_config().algorithm
  config.aggregator = 'trimmed_mean'
  config.trim_fraction = fraction
  with pytest.raises(ConfigError, match=r'trim_fraction must be in \[0, 0.5\)'):
    algorithms.validate(config)


def test_fedprox_without_mu_is_an_error():
  config = heart_disease.get_config().algorithm
  config.name = 'fedprox'
  with pytest.raises(ConfigError, match='proximal_strength > 0'):
    algorithms.validate(config)


def test_unknown_client_weighting_lists_valid_ones():
  config = heart_disease.get_config().algorithm
  config.client_weighting = 'by_size'
  with pytest.raises(ConfigError, match='num_examples, uniform'):
    algorithms.validate(config)


@pytest.mark.parametrize('name', sorted(models.MODELS))
def test_builders_return_uncompiled_probability_models(name):
  model = models.build_model(name, (8, 8, 1), 3, seed=1)
  out = model(np.zeros((2, 8, 8, 1), np.float32))
  np.testing.assert_allclose(out.numpy().sum(axis=1), 1.0, rtol=1e-5)
  assert model.optimizer is None


def test_builders_are_seeded():
  a = models.build_model('mlp', (5,), 2, seed=3).get_weights()
  b = models.build_model('mlp', (5,), 2, seed=3).get_weights()
  for x, y in zip(a, b, strict=True):
    np.testing.assert_array_equal(x, y)


def _write_npz(root, hospital, **arrays):
  (root / hospital).mkdir(parents=True)
  np.savez(root / hospital / 'data.npz', **arrays)


def test_npz_shards_accept_medmnist_keys_and_train_a_cnn(tmp_path):
  rng = np.random.RandomState(0)
  for hospital in ('site_a', 'site_b'):
    _write_npz(
      tmp_path,
      hospital,
      train_images=rng.randint(0, 256, (6, 8, 8), dtype=np.uint8),
      train_labels=rng.randint(0, 3, (6, 1)),
      test_images=rng.randint(0, 256, (4, 8, 8), dtype=np.uint8),
      test_labels=rng.randint(0, 3, (4, 1)),
    )
  raw = npz_shards.load_npz_shards(str(tmp_path), num_classes=3)
  assert raw['site_a'].x_train.shape == (6, 8, 8, 1) and raw['site_a'].x_train.max() <= 1.0
  with runtime.local_runtime():
    task = task_lib.create_task(
      raw, model_config={'name': 'small_cnn', 'filters': (4,)}, scaling_mode='none', seed=0
    )
    process = algorithms.build_learning_process(
      task.model_fn(), heart_disease.get_config().algorithm, 2
    )
    train = client_data.client_data(task.data, 'train')
    datasets = client_data.round_datasets(
      train,
      {'site_a': 6, 'site_b': 6},
      raw.hospitals,
      client_data.LocalTraining(2, local_epochs=1),
      seed=0,
      round_num=1,
    )
    output = process.next(process.initialize(), datasets)
  assert output.metrics['client_work']['train']['num_examples'] == 12


def test_npz_label_out_of_range_and_missing_keys_are_named(tmp_path):
  _write_npz(tmp_path, 'site_a', x=np.zeros((2, 4, 4)), y=np.array([0, 5]))
  with pytest.raises(
    ShardError,
    match=r"hospital 'site_a'.*data.npz.*arrays \['train_images', 'train_labels'\] not found",
  ):
    npz_shards.load_npz_shards(str(tmp_path), num_classes=2)
  (tmp_path / 'site_a' / 'data.npz').unlink()
  np.savez(tmp_path / 'site_a' / 'train.npz', x=np.zeros((2, 4, 4)), y=np.array([0, 5]))
  np.savez(tmp_path / 'site_a' / 'test.npz', x=np.zeros((1, 4, 4)), y=np.array([0]))
  with pytest.raises(ShardError, match=r"train.npz', column 'y', row 2: label 5 is outside"):
    npz_shards.load_npz_shards(str(tmp_path), num_classes=2)


def test_model_that_cannot_take_the_data_is_a_config_error(tmp_path):
  raw = shards.load_csv_shards(write_shards(tmp_path), label='outcome')
  with pytest.raises(ConfigError, match="model 'small_cnn' cannot take inputs of shape"):
    task_lib.create_task(raw, model_config={'name': 'small_cnn'}, scaling_mode='none', seed=0)
