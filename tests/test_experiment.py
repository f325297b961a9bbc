"""End to end: the real entry point on the embedded data, resume, export, faults."""

import csv
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from configs import csv_shards, heart_disease
from tests.shard_fixtures import write_shards
from tff_med import experiment
from tff_med.errors import ConfigError, ShardError
from tff_med.learning import process
from tff_med.run import export, settings


@pytest.fixture(scope='module')
def heart_root(tmp_path_factory):
  return str(tmp_path_factory.mktemp('heart_data'))


def smoke_config(root, **training):
  config = heart_disease.get_config('smoke')
  config.data.root = root
  config.training.update(training)
  return config


@pytest.fixture(scope='module')
def smoke_run(heart_root, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('run'))
  lines = []
  result = experiment.train(smoke_config(heart_root), workdir, print_fn=lines.append)
  return result, workdir, lines


def test_smoke_run_prints_progress_and_a_per_hospital_table(smoke_run):
  result, _, lines = smoke_run
  assert [line.split()[1] for line in lines if line.startswith('round ')] == ['0/2', '1/2', '2/2']
  assert 'train loss' in lines[-3] and 'eval AUC' in lines[-3]
  assert lines[-2] == 'Stopped: completed all 2 rounds.'
  for hospital in ('cleveland', 'hungary', 'switzerland', 'va_long_beach', 'all'):
    assert f'| {hospital} |' in lines[-1]
  assert 'switzerland: AUC undefined (test shard has only class 1)' in lines[-1]
  assert result.loop.rounds_completed == 2


def test_smoke_run_writes_metrics_config_tensorboard_and_model(smoke_run):
  _, workdir, _ = smoke_run
  with open(os.path.join(workdir, 'metrics.csv')) as f:
    rows = list(csv.DictReader(f))
  assert [r['key'] for r in rows] == ['0', '1', '2']
  assert float(rows[2]['eval/cleveland/auc']) > 0.5
  assert rows[2]['eval/switzerland/auc'] == 'nan'
  assert rows[1]['train/zero_weight_clients'] == '0'
  assert json.load(open(os.path.join(workdir, 'config.json')))['algorithm']['name'] == 'fedavg'
  assert any(f.startswith('events') for f in os.listdir(os.path.join(workdir, 'tensorboard')))
  results = json.load(open(os.path.join(workdir, 'results.json')))
  assert results['undefined_metric_notes'] == {'switzerland': 'test shard has only class 1'}


def test_exported_model_loads_in_plain_keras_and_matches_federated_eval(smoke_run, heart_root):
  result, workdir, _ = smoke_run
  model, preprocessing = export.load_exported(workdir)
  shard = result.task.data['hungary']  # Already standardized.
  probabilities = model.predict(shard.x_test, verbose=0)[:, 0]
  accuracy = np.mean((probabilities > 0.5) == shard.y_test)
  assert accuracy == pytest.approx(result.loop.final_eval['hungary']['accuracy'], abs=1e-6)
  assert len(preprocessing['feature_names']) == 13


def test_predict_scores_a_csv_and_rejects_missing_columns(smoke_run, heart_root, tmp_path):
  _, workdir, _ = smoke_run
  source = os.path.join(heart_root, 'cleveland', 'test.csv')
  out = tmp_path / 'scores.csv'
  assert export.score_csv(workdir, source, str(out)) == 104
  risks = [float(r['risk']) for r in csv.DictReader(open(out))]
  assert all(0 <= r <= 1 for r in risks)
  broken = tmp_path / 'broken.csv'
  broken.write_text('age,sex\n50,1\n')
  with pytest.raises(ShardError, match=r"columns \['trestbps'.*are missing"):
    export.score_csv(workdir, str(broken), str(tmp_path / 'x.csv'))


def test_predict_refuses_bad_input_before_scoring(smoke_run, heart_root, tmp_path):
  _, workdir, _ = smoke_run
  source = os.path.join(heart_root, 'cleveland', 'test.csv')
  with pytest.raises(ConfigError, match=r'--output .*: directory .*/no/such does not exist'):
    export.score_csv(workdir, source, str(tmp_path / 'no' / 'such' / 'scores.csv'))
  lines = open(source).read().splitlines()
  huge = tmp_path / 'huge.csv'
  huge.write_text('\n'.join([lines[0], '1e308' + lines[1][lines[1].index(',') :]]) + '\n')
  with pytest.raises(ShardError) as error:
    export.score_csv(workdir, str(huge), str(tmp_path / 'scores.csv'))
  assert str(error.value).startswith(
    f"file '{huge}', column 'age', row 1: value '1e308' is too large"
  )
  assert not os.path.exists(tmp_path / 'scores.csv')


class _Killed(Exception):
  pass


@pytest.mark.slow
@pytest.mark.parametrize('engine', ['tff', 'fused'])
def test_resume_after_a_kill_ends_with_the_same_weights(heart_root, tmp_path, engine):
  config = smoke_config(heart_root, rounds=4, eval_every=2, checkpoint_every=2)
  config.runtime.engine = engine
  straight = experiment.train(config, str(tmp_path / 'straight'), print_fn=lambda _: None)

  def die_after_round_3(line):
    if line.startswith('round 3/4'):
      raise _Killed  # After round 3 ran, before its state was saved (checkpoint: round 2).

  workdir = str(tmp_path / 'killed')
  with pytest.raises(_Killed):
    experiment.train(config, workdir, print_fn=die_after_round_3)
  resumed = experiment.train(config, workdir, print_fn=lambda _: None)
  assert resumed.loop.resumed_from == 2
  weights = [w.numpy() for w in _keras_weights(straight)]
  for a, b in zip(weights, _keras_weights(resumed), strict=True):
    np.testing.assert_array_equal(a, b.numpy())


def _keras_weights(result):
  return tf.keras.models.load_model(
    os.path.join(result.workdir, 'model', 'model.keras'), compile=False
  ).weights


@pytest.mark.slow
def test_stops_early_when_the_target_is_reached(heart_root, tmp_path):
  config = smoke_config(heart_root, rounds=5)
  config.training.stopping.target = 0.6
  result = experiment.train(config, str(tmp_path), print_fn=lambda _: None)
  assert result.loop.rounds_completed < 5
  assert result.loop.final_eval['all']['auc'] >= 0.6
  assert 'eval/all/auc reached the target 0.6' in result.loop.stop_reason
  with open(tmp_path / 'metrics.csv') as f:
    assert len(list(csv.DictReader(f))) == result.loop.rounds_completed + 1


@pytest.mark.parametrize(
  'field, value, message',
  [
    (
      'model.name',
      'resnet',
      "Unknown model 'resnet'; valid models are: logistic_regression, mlp, small_cnn",
    ),
    (
      'algorithm.name',
      'fedmagic',
      "Unknown algorithm 'fedmagic'; valid algorithms are: fedadagrad",
    ),
    (
      'algorithm.client_optimizer',
      'lbfgs',
      "Unknown client optimizer 'lbfgs'; valid client optimizers are: adagrad",
    ),
    (
      'algorithm.server_learning_rate',
      float('nan'),
      r"algorithm.server_learning_rate \(the server optimizer 'sgd'\) must be a positive number",
    ),
    ('data.eval_batch_size', 0, 'data.eval_batch_size must be >= 1, got 0'),
    ('data.batch_size', 0, 'data.batch_size must be >= 1, got 0'),
    ('data.local_steps', 0, 'set exactly one of data.local_steps and data.local_epochs'),
    ('training.on_non_finite', 'ignore', 'on_non_finite must be one of'),
    ('algorithm.clients_per_round', 9, 'clients_per_round=9 but there are only 4 hospitals'),
  ],
)
def test_bad_settings_are_errors_before_anything_is_written(
  heart_root, tmp_path, field, value, message
):
  config = smoke_config(heart_root)
  section, name = field.split('.')
  config[section][name] = value
  with pytest.raises(ConfigError, match=message):
    experiment.train(config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')


def test_stopping_on_a_metric_that_is_not_reported_is_an_error(heart_root, tmp_path):
  config = smoke_config(heart_root)
  config.training.stopping.metric = 'eval/all/acu'
  config.training.stopping.patience = 3
  with pytest.raises(
    ConfigError, match="stopping.metric 'eval/all/acu' is not reported; valid: eval/cleveland/loss"
  ):
    experiment.train(config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')


def test_trains_on_any_csv_shard_directory(tmp_path):
  config = csv_shards.get_config('smoke')
  config.data.root = write_shards(tmp_path / 'shards')
  config.data.label = 'outcome'
  config.data.batch_size = 2
  result = experiment.train(config, str(tmp_path / 'run'), print_fn=lambda _: None)
  assert set(result.loop.final_eval) == {'alpha', 'beta', 'all'}


def test_tensorboard_has_namespaced_scalars_hparams_and_no_undefined_points(smoke_run):
  from tensorboard.backend.event_processing import event_accumulator

  _, workdir, _ = smoke_run
  events = event_accumulator.EventAccumulator(os.path.join(workdir, 'tensorboard'))
  events.Reload()
  tags = set(events.Tags()['tensors'])
  assert {'train/loss', 'eval/cleveland/auc', 'eval/all/auc', 'round_seconds'} <= tags
  assert '_hparams_/session_start_info' in tags
  assert 'eval/switzerland/auc' not in tags  # Undefined: in the CSV as nan, not drawn.


def test_more_hospitals_than_client_seeds_tell_apart_are_refused():
  hospitals = [f'h{i}' for i in range(process.MAX_HOSPITALS + 1)]
  with pytest.raises(ConfigError, match='1001 hospitals; tff_med runs at most 1000'):
    settings.hospitals_per_round(hospitals, 0, seed=0)
  assert len(settings.hospitals_per_round(hospitals[:-1], 0, seed=0)(1)) == 1000
