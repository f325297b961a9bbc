"""Differential privacy: DP-SGD is SGD plus clipping and noise, epsilon is accounted, bad input named."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_federated as tff
from dp_accounting import rdp

from configs import heart_disease
from tff_med import experiment, runtime
from tff_med.errors import ConfigError
from tff_med.learning import metrics, models, task
from tff_med.learning.privacy import accounting, budget, dp_sgd

SIZES = {'cleveland': 199, 'hungary': 172, 'switzerland': 30, 'va_long_beach': 85}
SPEC = (tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([None, 1], tf.float32))


def model_fn():
  return task.variable_model(
    models.logistic_regression((3,), 2, seed=1), SPEC, 2, with_metrics=False
  )


def batches(seed=0, rows=12, batch_size=4):
  rng = np.random.RandomState(seed)
  x = rng.normal(size=(rows, 3)).astype(np.float32) * 3
  y = (rng.uniform(size=(rows, 1)) > 0.5).astype(np.float32)
  return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def initial_weights():
  return tff.learning.models.ModelWeights.from_model(model_fn())


def dp_update(noise, clip, seed=(0, 0)):
  work = dp_sgd.build_dp_sgd_client_work(
    model_fn,
    metrics.loss_fn(2, reduction='none'),
    tff.learning.optimizers.build_sgdm(0.1),
    l2_norm_clip=clip,
  )
  with runtime.local_runtime():
    output = work.next(
      work.initialize(), [initial_weights()], [(dp_sgd.params_dataset(noise, seed), batches())]
    )
  return output.result[0].update, output.measurements


def test_dp_sgd_without_noise_or_clipping_equals_tffs_own_client_work():
  reference = tff.learning.templates.build_model_delta_client_work(
    model_fn,
    tff.learning.optimizers.build_sgdm(0.1),
    tff.learning.ClientWeighting.NUM_EXAMPLES,
  )
  with runtime.local_runtime():
    expected = reference.next(reference.initialize(), [initial_weights()], [batches()])
  update, measurements = dp_update(noise=0.0, clip=1e6)
  for got, want in zip(update, expected.result[0].update, strict=True):
    np.testing.assert_allclose(got, want, atol=1e-6)
  assert measurements['train']['num_examples'] == 12


def test_clipping_bounds_each_patients_gradient():
  grads = [tf.constant([[3.0, 4.0], [0.3, 0.4]]), tf.constant([[0.0], [0.0]])]
  summed = dp_sgd.clip_and_sum(grads, l2_norm_clip=1.0)
  np.testing.assert_allclose(summed[0], [0.6 + 0.3, 0.8 + 0.4], atol=1e-6)  # 5 -> 1; 0.5 kept.
  # Three steps of lr 0.1, each moving at most 0.1 x clip (mean of clipped gradients).
  update, _ = dp_update(noise=0.0, clip=0.01)
  norm = math.sqrt(sum(float(np.sum(np.square(u))) for u in update))
  assert norm <= 3 * 0.1 * 0.01 + 1e-7


@pytest.mark.slow
def test_noise_is_seeded_and_scales_with_the_multiplier():
  a, _ = dp_update(noise=1.0, clip=1.0, seed=(1, 2))
  b, _ = dp_update(noise=1.0, clip=1.0, seed=(1, 2))
  c, _ = dp_update(noise=1.0, clip=1.0, seed=(1, 3))
  loud, _ = dp_update(noise=10.0, clip=1.0, seed=(1, 2))
  quiet, _ = dp_update(noise=0.0, clip=1.0)
  np.testing.assert_array_equal(a[0], b[0])
  assert not np.allclose(a[0], c[0])

  def rms_from_quiet(update):
    diff = np.concatenate([np.ravel(u - q) for u, q in zip(update, quiet, strict=True)])
    return np.sqrt(np.mean(diff**2))

  # Noise std 1 x clip / batch 4, three SGD steps of lr 0.1: about 0.04 per weight.
  assert 0.01 < rms_from_quiet(a) < 0.2
  assert 5 < rms_from_quiet(loud) / rms_from_quiet(a) < 20


def test_epsilon_falls_with_noise_and_calibration_meets_the_target():
  loud = accounting.epsilon(0.02, 1500, 4.0, 1e-3)
  quiet = accounting.epsilon(0.02, 1500, 1.0, 1e-3)
  assert loud < quiet
  assert accounting.epsilon(0.02, 1500, 0.0, 1e-3) == math.inf
  assert accounting.epsilon(0.02, 0, 1.0, 1e-3) == 0.0
  sigma = accounting.calibrate_noise(
    4 / 199, 1500, target_epsilon=1.0, delta=1e-3, max_noise_multiplier=50
  )
  assert accounting.epsilon(4 / 199, 1500, sigma, 1e-3) == pytest.approx(1.0, abs=0.01)
  # PLD is the tighter accountant.
  assert accounting.epsilon(4 / 199, 1500, sigma, 1e-3, 'pld') < 1.0


@pytest.mark.parametrize(
  'sampling_rate, steps, sigma', [(4 / 199, 1500, 1.1), (0.3, 7, 0.6), (1.0, 15, 2.0)]
)
def test_cached_rdp_epsilon_is_dp_accountings_own(sampling_rate, steps, sigma):
  # `epsilon` scales a cached one-step RDP vector; the accountant composes the steps itself.
  one_step_misses = accounting._rdp_one_step.cache_info().misses  # noqa: SLF001
  want = {}
  for count in (steps, steps + 1):
    acc = rdp.RdpAccountant()
    acc.compose(accounting.gaussian_event(sampling_rate, count, sigma))
    want[count] = acc.get_epsilon(1e-3)
    assert accounting.epsilon(sampling_rate, count, sigma, 1e-3) == want[count]
  assert want[steps + 1] > want[steps]
  # Both step counts scaled one one-step RDP, derived at most once (once per test run).
  assert accounting._rdp_one_step.cache_info().misses <= one_step_misses + 1  # noqa: SLF001
  # Asked again (another seed): the same number, not derived again.
  hits = accounting.epsilon.cache_info().hits
  assert accounting.epsilon(sampling_rate, steps, sigma, 1e-3) == want[steps]
  assert accounting.epsilon.cache_info().hits == hits + 1


def patient_config(**privacy_fields):
  config = heart_disease.get_config()
  config.privacy.level = 'patient'
  config.privacy.update(privacy_fields)
  return config


@pytest.mark.parametrize(
  'fields, message',
  [
    (dict(noise_multiplier=-1.0), 'noise_multiplier must be finite and >= 0'),
    (dict(noise_multiplier=float('nan')), 'noise_multiplier must be finite and >= 0'),
    (dict(noise_multiplier=float('inf')), 'noise_multiplier must be finite and >= 0'),
    (dict(noise_multiplier=1.0, delta=1.0), 'privacy.delta must be in'),
    (dict(noise_multiplier=1.0, delta=0.05), 'switzerland with n=30'),
    (dict(noise_multiplier=1.0, target_epsilon=1.0), 'exactly one of'),
    (dict(), 'exactly one of'),
    (dict(target_epsilon=0.0), 'target_epsilon must be finite and > 0'),
    (dict(target_epsilon=0.1), 'hospital switzerland: target epsilon 0.1 at delta'),
    (dict(noise_multiplier=1.0, l2_norm_clip=0.0), 'l2_norm_clip must be'),
    (dict(noise_multiplier=1.0, accountant='moments'), 'privacy accountant'),
    (dict(level='everything'), 'privacy level'),
  ],
)
def test_bad_privacy_settings_are_refused_before_training(fields, message):
  with pytest.raises(ConfigError, match=message):
    budget.plan(patient_config(**fields), SIZES, lambda r: list(SIZES))


def test_noise_without_a_privacy_level_is_refused():
  config = heart_disease.get_config()
  config.privacy.noise_multiplier = 1.0
  with pytest.raises(ConfigError, match="level is 'none'"):
    budget.plan(config, SIZES, lambda r: list(SIZES))


def test_target_epsilon_calibrates_each_hospitals_noise_to_its_size():
  plan = budget.plan(patient_config(target_epsilon=2.0), SIZES, lambda r: list(SIZES))
  sigmas = plan.noise_multipliers
  assert sigmas['switzerland'] > sigmas['va_long_beach'] > sigmas['hungary'] > sigmas['cleveland']
  final = plan.epsilons(15)
  assert all(eps == pytest.approx(2.0, abs=0.02) for eps in final.values())
  assert plan.round_metrics(1)[budget.EPSILON_MAX] < plan.round_metrics(15)[budget.EPSILON_MAX]


def test_hospitals_sampled_out_of_a_round_spend_nothing_in_it():
  plan = budget.plan(
    patient_config(noise_multiplier=2.0), SIZES, lambda r: ['cleveland'] if r % 2 else ['hungary']
  )
  assert plan.steps_after('cleveland', 4) == 2 * 100
  assert plan.steps_after('switzerland', 4) == 0
  assert plan.epsilons(4)['switzerland'] == 0.0


def test_hospital_level_noise_tff_refuses_is_named():
  config = heart_disease.get_config()
  config.privacy.level = 'hospital'
  config.privacy.target_epsilon = 2.0
  with pytest.raises(ConfigError, match='noise multiplier < 0.1 x hospitals per round = 0.4'):
    budget.plan(config, SIZES, lambda r: list(SIZES))


@pytest.fixture(scope='module')
def heart_root(tmp_path_factory):
  return str(tmp_path_factory.mktemp('heart'))


@pytest.mark.slow
def test_patient_level_run_reports_epsilon_per_round_and_in_results(heart_root, tmp_path):
  config = patient_config(target_epsilon=1.0)
  config.data.root = heart_root
  config.training.rounds = 2
  lines = []
  experiment.train(config, str(tmp_path), print_fn=lines.append)
  with open(tmp_path / 'results.json') as f:
    results = json.load(f)['privacy']
  assert results['level'] == 'patient'
  assert set(results['epsilon_pld']) == set(SIZES)
  assert all(0.8 < eps <= 1.0 for eps in results['epsilon_pld'].values())
  assert all(eps == pytest.approx(1.0, abs=0.01) for eps in results['epsilon_rdp'].values())
  assert '| switzerland |' in lines[-1] and 'epsilon (PLD)' in lines[-1]
  with open(tmp_path / 'metrics.csv') as f:
    header, *rows = f.read().splitlines()
  column = header.split(',').index(budget.EPSILON_MAX)
  spent = [float(r.split(',')[column]) for r in rows if r.split(',')[column]]
  assert len(spent) == 2 and 0 < spent[0] < spent[1]


@pytest.mark.slow
def test_hospital_level_run_warns_what_it_protects(heart_root, tmp_path, caplog):
  config = heart_disease.get_config('smoke')
  config.data.root = heart_root
  config.training.rounds = 1
  config.privacy.level = 'hospital'
  config.privacy.noise_multiplier = 0.3
  experiment.train(config, str(tmp_path), print_fn=lambda _: None)
  assert 'barely protects anything' in caplog.text
  with open(tmp_path / 'results.json') as f:
    assert json.load(f)['privacy']['epsilon_rdp'][budget.HOSPITAL_KEY] > 10


@pytest.mark.parametrize(
  'algorithm, aggregator, level, message',
  [
    ('fedprox', 'mean', 'patient', 'FedAvg family only'),
    ('fedavg', 'median', 'hospital', "set algorithm.aggregator='mean'"),
  ],
)
def test_privacy_the_algorithm_cannot_honour_is_refused(
  heart_root, tmp_path, algorithm, aggregator, level, message
):
  config = heart_disease.get_config('smoke')
  config.data.root = heart_root
  config.algorithm.name = algorithm
  config.algorithm.proximal_strength = 0.1
  config.algorithm.aggregator = aggregator
  config.privacy.level = level
  config.privacy.noise_multiplier = 0.1
  with pytest.raises(ConfigError, match=message):
    experiment.train(config, str(tmp_path / 'run'), print_fn=lambda _: None)
  assert not os.path.exists(tmp_path / 'run' / 'config.json')
