"""The comparison study end to end at a tiny size, and its bad inputs."""

import csv
import json
import math
import os

import pytest

from configs import heart_disease_compare
from tests.shard_fixtures import with_rows, write_shards
from tff_med.errors import ConfigError, ShardError
from tff_med.study import compare

pytestmark = pytest.mark.slow  # whole studies


def tiny_config(root):
  config = heart_disease_compare.get_config('smoke')
  config.data.root = root
  config.training.rounds = 1
  config.data.local_steps = 20
  config.study.bootstrap_samples = 50
  return config


@pytest.fixture(scope='module')
def study(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('heart'))
  workdir = str(tmp_path_factory.mktemp('study'))
  lines = []
  result = compare.run_study(tiny_config(root), workdir, print_fn=lines.append)
  return result, workdir


def test_every_method_is_evaluated_on_every_test_set(study):
  result, workdir = study
  with open(os.path.join(workdir, 'results.csv')) as f:
    rows = list(csv.DictReader(f))
  methods = {r['method'] for r in rows}
  assert methods == {
    'local_cleveland',
    'local_hungary',
    'local_switzerland',
    'local_va_long_beach',
    'pooled',
    'fedavg',
    'fedavg+finetune',
  }
  tests = {r['test_set'] for r in rows if r['method'] == 'pooled'}
  assert tests == {'cleveland', 'hungary', 'switzerland', 'va_long_beach', 'all'}
  for column in ('auc', 'pr_auc', 'sensitivity', 'specificity', 'brier', 'ece', 'auc_ci_low'):
    assert column in rows[0]


def test_one_class_test_shard_is_undefined_with_reason_not_zero(study):
  result, _ = study
  swiss = [r for r in result.rows if r['test_set'] == 'switzerland' and r['method'] == 'pooled'][0]
  assert math.isnan(swiss['auc']) and math.isnan(swiss['specificity'])
  assert 'auc: no negative patients' in swiss['undefined']
  assert not math.isnan(swiss['sensitivity'])


def test_summary_sits_next_to_flambys_figures_and_names_pooled_an_upper_bound(study):
  result, workdir = study
  summary = open(os.path.join(workdir, 'summary.md')).read()
  assert '| pooled |' in summary and '0.735' in summary and 'upper bound' in summary
  assert '| fedavg |' in summary and '0.685' in summary
  assert 'undefined' in summary


def test_writes_matrix_plots_heterogeneity_manifest_and_tensorboard_runs(study):
  _, workdir = study
  for name in (
    'cross_site_accuracy.csv',
    'cross_site_accuracy.png',
    'cross_site_auc.png',
    'fairness.csv',
    'accuracy_by_hospital.png',
    'learning_curves.png',
    'roc_fedavg.png',
    'heterogeneity.md',
    'heterogeneity.csv',
  ):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  for run in ('pooled', 'local_cleveland', 'fedavg', 'fedavg+finetune'):
    assert os.listdir(os.path.join(workdir, 'runs', run, 'seed_0', 'tensorboard')), run
  manifest = json.load(open(os.path.join(workdir, 'manifest.json')))
  assert set(manifest['versions']) == {'python', 'tensorflow', 'tensorflow_federated', 'numpy'}
  assert len(manifest['shards']) == 8 and all(len(v) == 64 for v in manifest['shards'].values())
  heterogeneity = open(os.path.join(workdir, 'heterogeneity.md')).read()
  assert '| switzerland | 30 | 16 |' in heterogeneity


def test_unknown_method_lists_valid_ones(tmp_path):
  config = tiny_config(str(tmp_path))
  config.study.methods = ('pooled', 'fedmagic')
  with pytest.raises(
    ConfigError, match=r"Unknown methods \['fedmagic'\]; valid methods are: local, pooled"
  ):
    compare.run_study(config, str(tmp_path / 'out'))


def test_seeds_below_one_is_an_error(tmp_path):
  config = tiny_config(str(tmp_path))
  config.study.seeds = 0
  with pytest.raises(ConfigError, match='seeds must be >= 1'):
    compare.run_study(config, str(tmp_path / 'out'))


def test_invalid_shards_stop_the_study_before_training(tmp_path):
  config = tiny_config(write_shards(tmp_path / 'shards', with_rows('beta', 'train', ['1,2,x,1'])))
  config.data.source = 'csv'
  config.data.label = 'outcome'
  with pytest.raises(ShardError, match="column 'smoker', row 1"):
    compare.run_study(config, str(tmp_path / 'out'))
  assert not os.path.exists(tmp_path / 'out')


def test_one_class_training_shard_still_gives_a_model_and_a_note():
  import numpy as np

  from tff_med.learning import models
  from tff_med.study import centralized

  x = np.random.RandomState(0).rand(8, 3).astype(np.float32)
  y = np.ones(8, np.int32)  # Every training patient has the disease.
  model = centralized.train_steps(
    models.build_model('logistic_regression', (3,), 2),
    x,
    y,
    steps=5,
    batch_size=4,
    optimizer='sgd',
    learning_rate=0.1,
    num_classes=2,
    seed=0,
  )
  assert centralized.predict_risk(model, x).shape == (8,)
  assert compare._one_class_note(y) == 'trained on one class only (1)'
  assert compare._one_class_note(np.array([0, 1])) == ''


@pytest.mark.parametrize('chunk_bytes', [64 * 2**20, 300], ids=['one chunk', 'chunks of 4 steps'])
def test_baseline_training_equals_keras_stepping_through_the_dataset(monkeypatch, chunk_bytes):
  import numpy as np
  import tensorflow as tf

  from tff_med.clients.client_data import shuffle_seed
  from tff_med.learning import models
  from tff_med.study import centralized

  monkeypatch.setattr(centralized, '_CHUNK_BYTES', chunk_bytes)
  rng = np.random.RandomState(0)
  x, y = rng.rand(30, 3).astype(np.float32), rng.randint(0, 2, 30)
  model = centralized.train_steps(
    models.build_model('mlp', (3,), 2, seed=1),
    x,
    y,
    steps=17,
    batch_size=4,
    optimizer='adam',
    learning_rate=0.05,
    num_classes=2,
    seed=3,
  )
  # The reference: the same seeded batches, one Keras step at a time, with Keras's loss on
  # the probabilities (which takes the logits behind them, as `model.fit` does).
  loss = tf.keras.losses.BinaryCrossentropy()
  reference, optimizer = models.build_model('mlp', (3,), 2, seed=1), tf.keras.optimizers.Adam(0.05)
  batches = (
    tf.data.Dataset.from_tensor_slices((x, y.astype(np.float32)[:, None]))
    .shuffle(30, seed=shuffle_seed(3, 0, 0), reshuffle_each_iteration=True)
    .repeat()
    .batch(4)
    .take(17)
  )
  for features, target in batches:
    with tf.GradientTape() as tape:
      value = loss(target, reference(features, training=True))
    variables = reference.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(value, variables), variables, strict=True))
  for got, want in zip(model.get_weights(), reference.get_weights(), strict=True):
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
  assert not np.allclose(
    model.get_weights()[0], models.build_model('mlp', (3,), 2, seed=1).get_weights()[0]
  )
  np.testing.assert_allclose(
    centralized.predict_risk(model, x), model.predict(x, verbose=0)[:, -1], rtol=0, atol=0
  )


def test_baselines_of_one_architecture_share_a_trainer_and_train_as_a_fresh_one(monkeypatch):
  import numpy as np
  import tensorflow as tf

  from tff_med.learning import models
  from tff_med.learning.build_cache import BuildCache
  from tff_med.study import centralized

  monkeypatch.setattr(centralized, '_TRAINERS', BuildCache())
  rng = np.random.RandomState(0)
  x, y = rng.rand(30, 3).astype(np.float32), rng.randint(0, 2, 30)
  settings = dict(steps=9, batch_size=4, optimizer='adam', learning_rate=0.05, num_classes=2)

  def trained(seed, model_seed=1, dropout=0.3):
    # tff_med's dropout is stateless (`seeded_dropout`): a shared trainer draws its masks.
    model = models.build_model('mlp', (3,), 2, seed=model_seed, dropout=dropout)
    return centralized.train_steps(model, x, y, seed=seed, **settings).get_weights()

  first = trained(seed=3)
  trained(seed=4)  # Another baseline moves the shared optimizer's state.
  again = trained(seed=3)
  assert len(centralized._TRAINERS._values) == 1  # noqa: SLF001  (traced once)
  for got, want in zip(again, first, strict=True):
    np.testing.assert_array_equal(got, want)
  for model_seed in (2, 3):  # Other initial weights, the same trainer (they are loaded).
    trained(seed=3, model_seed=model_seed, dropout=0.0)
  assert len(centralized._TRAINERS._values) == 2  # noqa: SLF001
  # Keras's own dropout draws from a stateful op: such a model gets a trainer per call.
  inputs = tf.keras.Input((3,))
  outputs = tf.keras.layers.Dense(1, 'sigmoid')(tf.keras.layers.Dropout(0.5)(inputs))
  centralized.train_steps(tf.keras.Model(inputs, outputs), x, y, seed=3, **settings)
  assert len(centralized._TRAINERS._values) == 2  # noqa: SLF001


def test_optimizer_without_a_keras_counterpart_is_refused_for_baselines(tmp_path):
  config = tiny_config(str(tmp_path))
  config.algorithm.client_optimizer = 'yogi'
  with pytest.raises(ConfigError, match=r"plain Keras, which has no 'yogi' optimizer"):
    compare.run_study(config, str(tmp_path / 'out'))


def test_auto_runs_fused_where_proved_and_ends_as_tffs_engine_does(study, tmp_path):
  result, workdir = study
  with open(os.path.join(workdir, 'manifest.json')) as f:
    assert json.load(f)['engines'] == {'fedavg/seed_0': 'fused'}
  with open(os.path.join(workdir, 'summary.md')) as f:
    assert 'Engines (runtime.engine): fedavg fused.' in f.read()
  config = tiny_config(str(tmp_path / 'heart'))
  config.runtime.engine = 'tff'
  config.study.methods = ('fedavg',)
  on_tff = compare.run_study(config, str(tmp_path / 'tff'), print_fn=lambda _: None)
  fused_rows = [r for r in result.rows if r['method'] == 'fedavg']
  assert len(on_tff.rows) == len(fused_rows) == 5
  for want, got in zip(on_tff.rows, fused_rows, strict=True):
    for key, value in want.items():
      if isinstance(value, float) and not math.isnan(value):
        assert got[key] == pytest.approx(value, abs=5e-4), (want['test_set'], key)
