"""SeededDropout: masks from the seed and the batch, the same in XLA as in TensorFlow's kernels."""

import numpy as np
import pytest
import tensorflow as tf

from configs import heart_disease
from tff_med import runtime
from tff_med.clients import client_data, resident
from tff_med.data.scaling import Standardizer
from tff_med.learning import models, seeded_dropout
from tff_med.run import export, simulated
from tests.test_fused import _three_classes

RATE = 0.3


def _mask(batch, seed=3, shape=(32, 64)):
  return seeded_dropout.keep_mask(
    shape, tf.stack([tf.constant(seed, tf.int64), seeded_dropout.batch_hash(batch)]), RATE
  )


def test_xla_draws_the_masks_tensorflow_draws():
  rng = np.random.RandomState(0)
  plain, xla = tf.function(_mask), tf.function(_mask, jit_compile=True)
  for _ in range(20):
    batch = tf.constant(rng.normal(size=(32, 7)).astype(np.float32))
    np.testing.assert_array_equal(plain(batch).numpy(), xla(batch).numpy())


def test_a_mask_changes_with_the_batch_its_order_and_the_seed():
  batch = tf.constant(np.random.RandomState(1).normal(size=(32, 7)).astype(np.float32))
  mask = _mask(batch).numpy()
  np.testing.assert_array_equal(_mask(tf.identity(batch)).numpy(), mask)
  for other in (tf.reverse(batch, [0]), batch + 1e-7 * tf.one_hot(5, 7), None):
    other_mask = _mask(batch, seed=4) if other is None else _mask(other)
    assert not np.array_equal(other_mask.numpy(), mask)


def test_units_are_kept_with_probability_one_minus_the_rate():
  batch = tf.constant(np.random.RandomState(2).normal(size=(8, 7)).astype(np.float32))
  kept = float(np.mean(_mask(batch, shape=(200, 500)).numpy()))
  assert abs(kept - (1 - RATE)) < 4 * np.sqrt(RATE * (1 - RATE) / 100_000)


def test_training_drops_and_scales_as_keras_and_inference_passes_through():
  layer = seeded_dropout.SeededDropout(RATE, seed=7)
  activations = tf.ones([16, 50])
  batch = tf.constant(np.arange(16 * 3, dtype=np.float32).reshape(16, 3))
  trained = layer([activations, batch], training=True).numpy()
  assert set(np.unique(trained)) == {0.0, np.float32(1 / (1 - RATE))}
  np.testing.assert_array_equal(trained, layer([activations, batch], training=True).numpy())
  np.testing.assert_array_equal(layer([activations, batch], training=False), activations)
  np.testing.assert_array_equal(layer([activations, batch]), activations)


@pytest.mark.parametrize('rate', [-0.1, 1.0, 1.5])
def test_a_rate_outside_zero_to_one_is_refused(rate):
  with pytest.raises(ValueError, match=f'dropout rate must be in \\[0, 1\\), got {rate}'):
    seeded_dropout.SeededDropout(rate, seed=0)


def test_an_exported_model_with_dropout_loads_and_predicts_the_same(tmp_path):
  model = models.build_model('mlp', (7,), 2, seed=3, hidden_units=(8,), dropout=RATE)
  assert seeded_dropout.seeds(model) == (4,)
  x = np.random.RandomState(3).normal(size=(5, 7)).astype(np.float32)
  export.export_model(
    str(tmp_path),
    model,
    feature_names=[f'f{i}' for i in range(7)],
    label='y',
    num_classes=2,
    standardizer=Standardizer('none', {'h': np.zeros(7)}, {'h': np.ones(7)}),
  )
  loaded, _ = export.load_exported(str(tmp_path))
  np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
  np.testing.assert_array_equal(loaded(x, training=True).numpy(), model(x, training=True).numpy())


def test_tffs_forward_pass_drops_units_in_training_only(tmp_path):
  config = heart_disease.get_config()
  config.model.dropout = RATE
  task, _ = _three_classes(tmp_path, config)
  model = task.model_fn()()  # As TFF's client work and evaluation call it.
  x = np.random.RandomState(4).normal(size=(6, 7)).astype(np.float32)
  batch = (x, np.zeros((6, 1), np.int32))
  trained = model.forward_pass(batch, training=True).predictions.numpy()
  np.testing.assert_array_equal(model.forward_pass(batch, training=True).predictions, trained)
  assert not np.allclose(model.forward_pass(batch, training=False).predictions, trained)


@pytest.mark.slow
def test_a_seeded_tff_run_with_dropout_repeats_exactly(tmp_path):
  # Keras's Dropout did not: two such runs differed after three rounds (2026-12-05).
  def weights_after_two_rounds():
    config = heart_disease.get_config()
    config.model.dropout = RATE
    task, hospitals = _three_classes(tmp_path, config)
    plan = client_data.LocalTraining(config.data.batch_size, config.data.local_steps)
    with resident.resident_shards(task.data) as kept:
      process, inputs_fn = simulated.process_and_inputs(config, task, plan, None, None, kept)
      state = process.initialize()
      for round_num in (1, 2):
        state = process.next(state, inputs_fn(round_num, hospitals(round_num))).state
      return process.get_model_weights(state).trainable

  with runtime.local_runtime():
    first, second = weights_after_two_rounds(), weights_after_two_rounds()
  for a, b in zip(first, second, strict=True):
    np.testing.assert_array_equal(a, b)
