"""The fused engine is held to TFF: same weights every round, same metrics and faults."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff

from configs import heart_disease
from tff_med.run import settings, simulated
from tff_med import experiment, runtime
from tff_med.clients import client_data, resident
from tff_med.data import shards
from tff_med.errors import ConfigError
from tff_med.learning import (
  attacks,
  evaluation,
  fused_clients,
  fused_aggregation,
  fused_evaluation,
  fused_run,
  fused_support,
)
from tff_med.learning import task as task_lib
from tff_med.learning.privacy import budget


def _synthetic(num_classes: int, nan_at: str | None = None) -> shards.FederatedShards:
  rng = np.random.RandomState(2)
  direction = rng.normal(size=(7, num_classes))

  def split(rows):
    x = rng.normal(size=(rows, 7)).astype(np.float32)
    return x, np.argmax(x @ direction + rng.normal(size=(rows, num_classes)), 1).astype(np.int32)

  hospitals = []
  for name, rows in [('north', 40), ('south', 9), ('east', 25)]:
    (x_train, y_train), (x_test, y_test) = split(rows), split(8)
    if name == nan_at:
      x_train[3, 2] = np.nan  # A hospital sending garbage: TFF zeroes its update.
    hospitals.append(shards.HospitalShard(name, x_train, y_train, x_test, y_test, files=['mem']))
  return shards.FederatedShards(hospitals, [f'f{i}' for i in range(7)], 'y', num_classes)


def _three_classes_with_dropout(tmp_path, config):
  config.model.dropout = 0.3  # After each hidden layer: the same masks in XLA as in TFF.
  return _three_classes(tmp_path, config)


def _heart(tmp_path, config):
  config.data.root = str(tmp_path / 'heart')
  task = task_lib.load_task(config)
  return task, lambda round_num: task.data.hospitals


def _three_classes_with_a_nan_hospital(tmp_path, config, nan_at='south'):
  config.model.name, config.model.hidden_units = 'mlp', (16, 8)
  config.algorithm.client_weighting = 'uniform'
  config.algorithm.server_learning_rate = config.algorithm.server_learning_rate or 0.7
  config.data.batch_size, config.data.local_steps = 5, 7
  task = task_lib.create_task(
    _synthetic(3, nan_at=nan_at),
    model_config=config.model.to_dict(),
    scaling_mode='none',
    seed=config.seed,
  )
  # Hospitals change between rounds and come in any order.
  return task, lambda r: ['east', 'north', 'south'] if r % 2 else ['south', 'north']


def _three_classes(tmp_path, config):
  return _three_classes_with_a_nan_hospital(tmp_path, config, nan_at=None)


def _from_tff(tff_state, fused_process) -> dict:
  """TFF's learning-process state as the fused engine's state."""
  template = fused_process.initialize()['server_optimizer']
  return {
    'trainable': [np.asarray(w) for w in tff_state.global_model_weights.trainable],
    'server_optimizer': tf.nest.pack_sequence_as(template, tf.nest.flatten(tff_state.finalizer)),
    'aggregator': fused_process.initialize()['aggregator'],  # Adam is held with the mean only.
  }


def _assert_close(tff_metrics, fused_metrics):
  assert list(tff_metrics) == list(fused_metrics)
  for key, value in tff_metrics.items():
    np.testing.assert_allclose(fused_metrics[key], value, atol=1e-5, err_msg=key)


# The FedAvg family beyond plain FedAvg, each held to TFF on the small synthetic study,
# with its tolerance on weights per round (`benchmarks/fused_equality.py` measures the
# largest difference on the heart study).
# Marked slow: the same code path as a fast one, with another optimizer.
ALGORITHMS = {
  'fedavgm': ({'name': 'fedavgm'}, 1e-6, pytest.mark.slow),
  'fedprox': ({'name': 'fedprox', 'proximal_strength': 0.5}, 1e-6, ()),
  'fedadam': ({'name': 'fedadam', 'server_learning_rate': 0.3}, 1e-5, ()),
  'fedyogi': ({'name': 'fedyogi', 'server_learning_rate': 0.1}, 1e-6, pytest.mark.slow),
  'fedadagrad': ({'name': 'fedadagrad', 'server_learning_rate': 0.3}, 1e-6, pytest.mark.slow),
  'client_momentum': ({'client_momentum': 0.9}, 1e-6, ()),
  'client_adam': (
    {'client_optimizer': 'adam', 'client_learning_rate': 0.01},
    1e-5,
    pytest.mark.slow,
  ),
}
# The robust aggregators, with the hospital whose updates TFF zeroes (left out of them).
# Marked slow: covered in the fast tier too (median by sign_flip+median below).
AGGREGATORS = {
  'median': ({'aggregator': 'median'}, 1e-6, pytest.mark.slow),
  'trimmed_mean': ({'aggregator': 'trimmed_mean', 'trim_fraction': 0.34}, 1e-6, pytest.mark.slow),
  'multi_krum': ({'aggregator': 'multi_krum', 'krum_byzantine': 1}, 1e-6, ()),
  'norm_clip': ({'aggregator': 'norm_clip'}, 1e-6, ()),
  'robust': ({'aggregator': 'robust'}, 1e-6, ()),
}
# The update attacks of the robustness study, from hospital 'north' (its noise seeded).
ATTACKS = {
  'sign_flip+median': ({'attack': 'sign_flip', 'aggregator': 'median'}, 1e-6, ()),
  'scale': ({'attack': 'scale'}, 1e-6, pytest.mark.slow),
  'gaussian_noise+norm_clip': (
    {'attack': 'gaussian_noise', 'aggregator': 'norm_clip'},
    1e-6,
    pytest.mark.slow,  # Its aggregator is in the fast tier; the attack only here.
  ),
  'sign_flip+robust': ({'attack': 'sign_flip', 'aggregator': 'robust'}, 1e-6, pytest.mark.slow),
}


@pytest.mark.parametrize(
  'study, rounds, algorithm, atol',
  [
    (_heart, 15, {}, 1e-6),
    (_three_classes_with_a_nan_hospital, 6, {}, 1e-6),
    pytest.param(_three_classes_with_dropout, 6, {}, 1e-6, id='dropout'),
  ]
  + [
    pytest.param(_three_classes, 6, change, atol, id=name, marks=marks)
    for name, (change, atol, marks) in ALGORITHMS.items()
  ]
  + [
    pytest.param(_three_classes_with_a_nan_hospital, 6, change, atol, id=name, marks=marks)
    for name, (change, atol, marks) in AGGREGATORS.items()
  ]
  + [
    pytest.param(_three_classes, 4, change, atol, id=name, marks=marks)
    for name, (change, atol, marks) in ATTACKS.items()
  ],
)
def test_every_round_equals_tffs_learning_process(tmp_path, study, rounds, algorithm, atol):
  config = heart_disease.get_config()
  config.runtime.engine = 'fused'
  algorithm = dict(algorithm)
  config.attack.update(kind=algorithm.pop('attack', 'none'), hospitals=('north',))
  config.algorithm.update(algorithm)
  with runtime.local_runtime():
    task, hospitals = study(tmp_path, config)
    attack = attacks.from_config(config.attack, task.data.hospitals)
    plan = client_data.LocalTraining(config.data.batch_size, config.data.local_steps)
    with resident.resident_shards(task.data) as kept:
      tff_process, inputs_fn = simulated.process_and_inputs(config, task, plan, attack, None, kept)
      fused_process, datasets_fn = fused_run.process_and_datasets(config, task, plan, attack)
      tff_state, fused_state = tff_process.initialize(), fused_process.initialize()
      zeroed = 0
      for round_num in range(1, rounds + 1):
        a = tff_process.next(tff_state, inputs_fn(round_num, hospitals(round_num)))
        b = fused_process.next(fused_state, datasets_fn(round_num, hospitals(round_num)))
        for want, got in zip(
          tff_process.get_model_weights(a.state).trainable,
          fused_process.get_model_weights(b.state).trainable,
          strict=True,
        ):
          np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=f'round {round_num}')
        tff_state = a.state
        # Adam is held per round (each fused round starts from TFF's state): its division by
        # the root of a small second moment amplifies rounding from round to round.
        fused_state = _from_tff(a.state, fused_process) if atol > 1e-6 else b.state
        _assert_close(a.metrics['client_work']['train'], b.metrics['client_work']['train'])
        for part, key in [
          ('aggregator', 'zero_weight_clients'),
          ('finalizer', 'update_non_finite'),
        ]:
          assert int(b.metrics[part][key]) == int(a.metrics[part][key])
        zeroed += int(b.metrics['aggregator']['zero_weight_clients'])
  if study is _three_classes_with_a_nan_hospital:
    assert zeroed == rounds  # 'south' takes part in every round and is zeroed in each.


@pytest.mark.parametrize(
  'noise, atol',
  [(0.0, 1e-6), pytest.param(1.0, 1e-6, marks=pytest.mark.slow)],
  ids=['clipping only', 'clipping and noise'],
)
def test_patient_level_dp_rounds_equal_tffs(tmp_path, noise, atol):
  # With the noise set to zero the clipping (active at this norm) must match exactly; with
  # noise, the same stateless seeds draw the same noise.
  config = heart_disease.get_config()
  config.privacy.update(level='patient', noise_multiplier=noise, l2_norm_clip=0.05)
  with runtime.local_runtime():
    task, hospitals = _three_classes(tmp_path, config)
    sizes = {s.hospital: len(s.y_train) for s in task.data.shards}
    privacy_plan = budget.plan(config, sizes, hospitals)
    plan = client_data.LocalTraining(config.data.batch_size, config.data.local_steps)
    with resident.resident_shards(task.data) as kept:
      tff_process, inputs_fn = simulated.process_and_inputs(
        config, task, plan, None, privacy_plan, kept
      )
      fused_process, datasets_fn = fused_run.process_and_datasets(
        config, task, plan, None, privacy_plan
      )
      tff_state, fused_state = tff_process.initialize(), fused_process.initialize()
      moved = 0.0
      for round_num in range(1, 4):
        a = tff_process.next(tff_state, inputs_fn(round_num, hospitals(round_num)))
        b = fused_process.next(fused_state, datasets_fn(round_num, hospitals(round_num)))
        for start, want, got in zip(
          tff_process.get_model_weights(tff_state).trainable,
          tff_process.get_model_weights(a.state).trainable,
          fused_process.get_model_weights(b.state).trainable,
          strict=True,
        ):
          np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=f'round {round_num}')
          moved = max(moved, float(np.max(np.abs(want - start))))
        examples = 35 * len(hospitals(round_num))  # 7 steps of 5 at each; DP reports nothing else.
        assert dict(b.metrics['client_work']['train']) == {'num_examples': examples}
        assert int(a.metrics['client_work']['train']['num_examples']) == examples
        tff_state, fused_state = a.state, b.state
  assert moved > 10 * atol  # The rounds trained.


@pytest.mark.parametrize(
  'change, named',
  [
    ({'algorithm.name': 'fedsgd'}, "algorithm.name='fedsgd'"),
    ({'algorithm.client_optimizer': 'rmsprop'}, "algorithm.client_optimizer='rmsprop'"),
    ({'algorithm.server_optimizer': 'adamw'}, "algorithm.server_optimizer='adamw'"),
    ({'algorithm.aggregator': 'compression'}, "algorithm.aggregator='compression'"),
    ({'data.local_steps': 0, 'data.local_epochs': 1}, 'data.local_epochs'),
    ({'privacy.level': 'hospital', 'privacy.noise_multiplier': 1.0}, "privacy.level='hospital'"),
    (
      {'attack.kind': 'sign_flip', 'attack.hospitals': ('hungary',), 'algorithm.name': 'fedprox'},
      "attack.kind='sign_flip' with algorithm.name='fedprox'",
    ),
  ],
)
def test_what_it_is_not_proved_on_is_named(change, named):
  config = heart_disease.get_config()
  for key, value in change.items():
    section, field = key.split('.')
    config[section][field] = value
  attack = attacks.from_config(config.attack, ['cleveland', 'hungary'])
  privacy_plan = config.privacy if config.privacy.level != 'none' else None
  with pytest.raises(ConfigError, match=named):
    fused_support.check_supported(config, privacy_plan=privacy_plan, attack=attack)


def test_label_flipping_changes_only_data_so_it_runs():
  config = heart_disease.get_config()
  config.attack.kind, config.attack.hospitals = 'label_flip', ('hungary',)
  attack = attacks.from_config(config.attack, ['cleveland', 'hungary'])
  fused_support.check_supported(config, privacy_plan=None, attack=attack)  # Does not raise.


def test_a_refused_run_stops_before_anything_is_written(tmp_path):
  config = heart_disease.get_config('smoke')
  config.data.root = str(tmp_path / 'heart')
  config.runtime.engine = 'fused'
  config.algorithm.name = 'fedsgd'
  with pytest.raises(ConfigError, match="runtime.engine='fused' does not support algorithm.name"):
    experiment.train(config, str(tmp_path / 'run'), print_fn=lambda _: None)
  assert not (tmp_path / 'run').exists()


def test_models_other_than_dense_layers_are_refused():
  rng = np.random.RandomState(0)
  x, y = rng.normal(size=(6, 8, 8, 1)).astype(np.float32), np.array([0, 1] * 3, np.int32)
  features = [f'p{i}' for i in range(64)]
  data = shards.FederatedShards([shards.HospitalShard('h', x, y, x, y, ['mem'])], features, 'y', 2)
  config = heart_disease.get_config()
  with runtime.local_runtime():
    task = task_lib.create_task(
      data, model_config={'name': 'small_cnn'}, scaling_mode='none', seed=0
    )
  with pytest.raises(ConfigError, match='Conv2D'):
    fused_clients.FusedClients(task, config.algorithm, local_steps=2)


def test_keras_dropout_is_refused_by_name():
  # Its stateful masks differ between XLA and TFF's worker (and between TFF runs).
  inputs = tf.keras.Input((5,))
  hidden = tf.keras.layers.Dropout(0.2, name='drop')(tf.keras.layers.Dense(4)(inputs))
  model = tf.keras.Model(inputs, tf.keras.layers.Dense(1, activation='sigmoid')(hidden))
  with pytest.raises(ConfigError, match=r'drop \(Dropout\)'):
    fused_support.check_model(model)


def test_an_unknown_engine_is_named():
  config = heart_disease.get_config()
  config.runtime.engine = 'jax'
  with pytest.raises(
    ConfigError, match="Unknown engine 'jax'; valid engines are: auto, fused, tff"
  ):
    settings.validate_training(config)


def _two_rounds(config, tmp_path):
  """(process, weights after rounds 1 and 2) of the three-class study at `config.seed`."""
  task, hospitals = _three_classes(tmp_path, config)
  plan = client_data.LocalTraining(config.data.batch_size, config.data.local_steps)
  process, datasets_fn = fused_run.process_and_datasets(config, task, plan)
  state = process.initialize()
  np.testing.assert_array_equal(state['trainable'][0], task.keras_model().get_weights()[0])
  weights = []
  for round_num in (1, 2):
    state = process.next(state, datasets_fn(round_num, hospitals(round_num))).state
    weights.append(state['trainable'])
  return process, weights


def test_another_seeds_run_reuses_the_compiled_engine_and_equals_a_fresh_one(tmp_path, monkeypatch):
  config = heart_disease.get_config()
  config.algorithm.update(name='fedadam', server_learning_rate=0.3)
  first, _ = _two_rounds(config, tmp_path)
  config.seed = 1
  reused, weights = _two_rounds(config, tmp_path)
  assert reused._round is first._round  # noqa: SLF001  (compiled once)
  _assert_equal_to_a_fresh_engine(config, tmp_path, monkeypatch, weights, first)


def _assert_equal_to_a_fresh_engine(config, tmp_path, monkeypatch, weights, built):
  monkeypatch.setattr(fused_run, '_ENGINES', fused_run.BuildCache())
  monkeypatch.setattr(fused_clients, '_SHARED', fused_run.BuildCache())
  fresh, want = _two_rounds(config, tmp_path)
  assert fresh._clients is not built._clients  # noqa: SLF001
  for got_round, want_round in zip(weights, want, strict=True):
    for got, expected in zip(got_round, want_round, strict=True):
      np.testing.assert_array_equal(got, expected)


def test_another_aggregator_and_server_share_the_client_work_and_equal_a_fresh_engine(
  tmp_path, monkeypatch
):
  config = heart_disease.get_config()
  first = _engine(config, tmp_path)
  config.algorithm.update(name='fedadam', server_learning_rate=0.3, aggregator='median')
  shared, weights = _two_rounds(config, tmp_path)
  assert shared._round is not first._round  # noqa: SLF001
  assert shared._clients is first._clients  # noqa: SLF001  (compiled once)
  _assert_equal_to_a_fresh_engine(config, tmp_path, monkeypatch, weights, shared)
  config.algorithm.client_learning_rate /= 2  # Trains otherwise at the hospitals.
  assert _engine(config, tmp_path)._clients is not shared._clients  # noqa: SLF001


def _engine(config, tmp_path):
  """The fused process of the three-class study (not run)."""
  task = _three_classes(tmp_path, config)[0]  # Sets the study's local steps.
  plan = client_data.LocalTraining(config.data.batch_size, config.data.local_steps)
  return fused_run.process_and_datasets(config, task, plan)[0]


def test_another_seeds_run_with_dropout_compiles_that_seeds_masks(tmp_path):
  # The dropout seeds are compiled into the round: a reused engine would draw seed 0's masks.
  config = heart_disease.get_config()
  config.model.dropout = 0.3
  first = _engine(config, tmp_path)
  config.seed = 1
  second = _engine(config, tmp_path)
  assert second._round is not first._round  # noqa: SLF001
  assert second._clients is not first._clients  # noqa: SLF001


def _with_empty_test_shard(data: shards.FederatedShards, hospital: str) -> shards.FederatedShards:
  for s in data.shards:
    if s.hospital == hospital:
      s.x_test, s.y_test = s.x_test[:0], s.y_test[:0]
  return data


@pytest.mark.parametrize('study', ['heart', 'three classes, one empty test shard'])
def test_in_process_evaluation_equals_tffs_federated_evaluation(tmp_path, study):
  config = heart_disease.get_config()
  config.data.eval_batch_size = 3  # Several batches per hospital, the last one short.
  with runtime.local_runtime():
    if study == 'heart':  # Switzerland's test shard has one class: AUC undefined, noted.
      task, _ = _heart(tmp_path, config)
    else:
      config.model.name, config.model.hidden_units = 'mlp', (16, 8)
      data = _with_empty_test_shard(_synthetic(3), 'south')
      task = task_lib.create_task(
        data, model_config=config.model.to_dict(), scaling_mode='none', seed=0
      )
    weights = tff.learning.models.ModelWeights.from_model(
      task_lib.Task(task.data, task.standardizer, task.model_config, seed=5).keras_model()
    )
    with resident.resident_shards(task.data) as kept:
      federated = evaluation.FederatedEvaluator.resident(task, kept, batch_size=3)
      fused_evaluator = fused_evaluation.FusedEvaluator(task, batch_size=3)
      assert fused_evaluator.notes == federated.notes
      for absent in [(), (task.data.hospitals[0],)]:
        want, got = federated.evaluate(weights, absent), fused_evaluator.evaluate(weights, absent)
        assert list(got) == list(want)
        for name in want:
          assert list(got[name]) == list(want[name])
          np.testing.assert_allclose(
            list(got[name].values()), list(want[name].values()), rtol=1e-6, atol=1e-7, err_msg=name
          )
  assert np.isnan(got['all']['accuracy']) and not np.isnan(want[task.data.hospitals[-1]]['loss'])


def test_robust_mean_equals_tffs_robust_aggregator_round_after_round():
  # Updates of two tensors from five clients; one sends a huge coordinate (zeroed), the
  # norms straddle the clipping estimate as it adapts.
  value_type = tff.types.to_type([(np.float32, (3,)), (np.float32, (2,))])
  process = tff.learning.robust_aggregator(weighted=True).create(
    value_type, tff.TensorType(np.float32)
  )
  rng = np.random.RandomState(0)
  config = heart_disease.get_config()
  config.algorithm.aggregator = 'robust'
  fused_state = fused_aggregation.initial_state(config.algorithm)
  zeroed = clipped = 0
  with runtime.local_runtime():
    state = process.initialize()
    for round_num in range(8):
      updates = [
        [rng.normal(0, s, 3).astype(np.float32), rng.normal(0, s, 2).astype(np.float32)]
        for s in (0.1, 0.5, 1.0, 2.0, 0.3)
      ]
      updates[round_num % 5][0][1] = 1e3 if round_num % 2 else updates[round_num % 5][0][1]
      weights = [float(w) for w in rng.randint(1, 50, 5)]
      out = process.next(state, updates, weights)
      mean, fused_state = fused_aggregation.robust_mean(
        [[tf.constant(a) for a in u] for u in updates],
        [tf.constant(w) for w in weights],
        fused_state,
      )
      for want, got in zip(out.result, mean, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=f'round {round_num}')
      state = out.state
      # TFF reports this round's norms; the fused state holds the next round's estimates.
      estimates = [float(s.current_estimate) for s in fused_state]
      assert np.isclose(
        estimates[1],
        float(process.next(state, updates, weights).measurements['zeroing']['clipping_norm']),
        rtol=1e-6,
      )
      zeroed += int(out.measurements['zeroed_count'])
      clipped += int(out.measurements['zeroing']['clipped_count'])
  assert zeroed >= 4 and 0 < clipped < 40  # Both branches ran.
