"""Adversarial hospitals: the attacks are real, the robust aggregators resist, bad input is named."""

import os

import numpy as np
import pytest

from configs import heart_disease
from tff_med import experiment
from tff_med.errors import ConfigError
from tff_med.learning import attacks, evaluation

HOSPITALS = ['cleveland', 'hungary', 'switzerland', 'va_long_beach']


@pytest.fixture(scope='module')
def heart_root(tmp_path_factory):
  return str(tmp_path_factory.mktemp('heart'))


def accuracy(root, tmp_path, name, kind='none', aggregator='mean'):
  config = heart_disease.get_config()
  config.data.root = root
  config.training.rounds = 3
  config.training.eval_every = 3
  config.algorithm.aggregator = aggregator
  config.attack.kind = kind
  config.attack.hospitals = ('cleveland',) if kind != 'none' else ()
  result = experiment.train(config, str(tmp_path / name), print_fn=lambda _: None)
  return evaluation.mean_over_hospitals(result.loop.final_eval, 'accuracy')


@pytest.mark.slow
def test_sign_flip_breaks_fedavg_and_the_median_resists(heart_root, tmp_path):
  clean = accuracy(heart_root, tmp_path, 'clean')
  attacked = accuracy(heart_root, tmp_path, 'attacked', 'sign_flip')
  defended = accuracy(heart_root, tmp_path, 'defended', 'sign_flip', 'median')
  assert attacked < clean - 0.15  # One hospital sending -10 x its update is a real attack.
  assert defended > attacked + 0.15


def test_label_flip_flips_only_the_adversarys_training_labels():
  y = np.array([0, 1, 1, 0])
  np.testing.assert_array_equal(attacks.flip_labels(y, 2), [1, 0, 0, 1])
  np.testing.assert_array_equal(attacks.flip_labels(np.array([0, 1, 2]), 3), [1, 2, 0])


@pytest.mark.parametrize(
  'kind, hospitals, message',
  [
    ('poison', ('cleveland',), "Unknown attack 'poison'; valid attacks are: label_flip"),
    ('sign_flip', ('mayo',), r"adversarial hospitals \['mayo'\] are not hospitals of this study"),
    ('sign_flip', tuple(HOSPITALS), '4 adversaries among 4 hospitals'),
    ('scale', (), 'names no adversarial hospital'),
  ],
)
def test_bad_attack_configs_are_refused(kind, hospitals, message):
  config = heart_disease.get_config().attack
  config.kind = kind
  config.hospitals = hospitals
  with pytest.raises(ConfigError, match=message):
    attacks.from_config(config, HOSPITALS)


def test_update_attack_on_fedprox_is_refused_before_anything_is_written(heart_root, tmp_path):
  config = heart_disease.get_config('smoke')
  config.data.root = heart_root
  config.algorithm.name = 'fedprox'
  config.algorithm.proximal_strength = 0.1
  config.attack.kind = 'sign_flip'
  config.attack.hospitals = ('hungary',)
  with pytest.raises(ConfigError, match='FedAvg family only'):
    experiment.train(config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')
