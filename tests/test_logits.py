"""Training takes a classifier's logits: the view shares the model's weights, and TFF's loss
keeps the gradient of a confidently wrong patient that clipped probabilities would lose."""

import numpy as np
import pytest
import tensorflow as tf

from tff_med.errors import ConfigError
from tff_med.learning import logits, models
from tff_med.learning import task as task_lib

X = np.random.RandomState(0).normal(size=(16, 5)).astype(np.float32)


@pytest.mark.parametrize(
  'num_classes, activation', [(2, tf.sigmoid), (4, tf.nn.softmax)], ids=['sigmoid', 'softmax']
)
@pytest.mark.parametrize('name', ['logistic_regression', 'mlp'])
def test_the_view_shares_the_weights_and_its_activation_gives_the_models_output(
  name, num_classes, activation
):
  model = models.build_model(name, (5,), num_classes, seed=3, dropout=0.5)
  view = logits.logits_model(model, num_classes)
  assert [id(v) for v in view.trainable_variables] == [id(v) for v in model.trainable_variables]
  for training in (False, True):
    np.testing.assert_array_equal(
      activation(view(X, training=training)).numpy(), model(X, training=training).numpy()
    )
  model.trainable_variables[0].assign_add(tf.ones_like(model.trainable_variables[0]))
  np.testing.assert_array_equal(activation(view(X)).numpy(), model(X).numpy())


def test_a_survival_model_is_its_own_view():
  model = models.build_model('logistic_regression', (5,), 1)
  assert logits.logits_model(model, 1) is model


@pytest.mark.parametrize(
  'num_classes, activation, match',
  [
    (2, None, r"must apply sigmoid; 'risk' applies linear"),
    (2, 'softmax', r"must apply sigmoid; 'risk' applies softmax"),
    (3, 'sigmoid', r"must apply softmax; 'risk' applies sigmoid"),
  ],
)
def test_a_classifier_without_a_probability_head_is_refused_by_name(num_classes, activation, match):
  inputs = tf.keras.Input((5,))
  head = tf.keras.layers.Dense(1 if num_classes == 2 else num_classes, activation, name='risk')
  model = tf.keras.Model(inputs, head(inputs), name='custom')
  with pytest.raises(ConfigError, match=rf"model 'custom': .*{match}"):
    logits.logits_model(model, num_classes)


def test_a_head_applied_twice_is_refused_by_name():
  inputs = tf.keras.Input((5,))
  head = tf.keras.layers.Dense(5, 'softmax', name='risk')
  model = tf.keras.Model(inputs, head(head(inputs)), name='twice')
  with pytest.raises(ConfigError, match=r"model 'twice': its last layer 'risk' is used more"):
    logits.logits_model(model, 5)


def test_a_confidently_wrong_patient_keeps_its_loss_and_gradient_in_tffs_model():
  model = models.build_model('logistic_regression', (5,), 2)
  kernel, bias = model.trainable_variables
  kernel.assign(tf.zeros_like(kernel))
  bias.assign([-30.0])  # Every patient is predicted healthy with probability 1 - 1e-13.
  tff_model = task_lib.variable_model(
    model, (tf.TensorSpec([None, 5]), tf.TensorSpec([None, 1])), 2
  )
  sick = (tf.constant(X), tf.ones([16, 1]))
  with tf.GradientTape() as tape:
    loss = tff_model.forward_pass(sick, training=True).loss
  # Clipped probabilities would give -log(1e-7) = 16.1 and no gradient at all.
  np.testing.assert_allclose(loss.numpy(), 30.0, rtol=1e-6)
  np.testing.assert_allclose(tape.gradient(loss, bias).numpy(), [-1.0], rtol=1e-6)
