"""Each hospital's row order: a permutation per pass, the same drawn one hospital at a time
(its dataset, in TensorFlow) or all at once (the fused engine, in numpy)."""

import numpy as np
import pytest
import tensorflow as tf

from tff_med.clients import client_data, shuffle


def _batches(size, plan, seed, columns=False):
  rows = tf.data.Dataset.range(size)
  if columns:  # (features, label) pairs, as hospitals' datasets hold them.
    rows = rows.map(lambda i: (tf.fill([3], tf.cast(i, tf.float32)), tf.reshape(i, [1])))
  return list(client_data.training_dataset(rows, size, plan, seed).as_numpy_iterator())


def test_round_rows_are_each_hospitals_dataset_rows_across_padding_groups():
  # Sizes across the groups of round_rows' padding (1, 2-3, 4-7, ...), some smaller
  # than a round's steps x batch (further passes), the largest seed shuffle_seed gives.
  plan = client_data.LocalTraining(batch_size=4, local_steps=5)
  sizes = [1, 2, 3, 4, 7, 8, 9, 20, 33, 64, 100]
  seeds = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 2**31 - 2]
  got = client_data.round_indices(sizes, seeds, plan)
  assert got.shape == (len(sizes), 5, 4)
  for index, (size, seed) in enumerate(zip(sizes, seeds, strict=True)):
    np.testing.assert_array_equal(got[index], np.stack(_batches(size, plan, seed)))


def test_local_steps_take_every_row_once_per_pass_and_run_on_across_passes():
  plan = client_data.LocalTraining(batch_size=3, local_steps=4)  # 12 rows of a 5-row shard.
  rows = np.concatenate(_batches(5, plan, seed=3))
  for start in (0, 5):
    assert sorted(rows[start : start + 5]) == [0, 1, 2, 3, 4]
  assert list(rows[:5]) != list(rows[5:10])  # Each pass its own order.
  assert list(rows) != list(np.concatenate(_batches(5, plan, seed=4)))


def test_local_epochs_batch_each_pass_on_its_own_keeping_the_short_last_batch():
  plan = client_data.LocalTraining(batch_size=3, local_epochs=2)
  batches = _batches(7, plan, seed=3)
  assert [len(b) for b in batches] == [3, 3, 1, 3, 3, 1]
  first, second = np.concatenate(batches[:3]), np.concatenate(batches[3:])
  assert sorted(first) == sorted(second) == list(range(7))
  np.testing.assert_array_equal(first, shuffle.epoch_orders(7, 3, 2)[0])
  np.testing.assert_array_equal(second, shuffle.epoch_orders(7, 3, 2)[1])


def test_features_and_labels_stay_paired_and_keep_their_shapes():
  plan = client_data.LocalTraining(batch_size=4, local_steps=3)
  for x, y in _batches(6, plan, seed=9, columns=True):
    assert x.shape == (4, 3) and y.shape == (4, 1)
    np.testing.assert_array_equal(x[:, 0], y[:, 0].astype(np.float32))


def test_size_and_seed_as_tensors_in_a_graph_give_the_same_batches():
  # As a remote worker builds its dataset: size and seed computed inside the computation.
  plan = client_data.LocalTraining(batch_size=4, local_steps=3)

  @tf.function
  def batches(size, seed):
    dataset = client_data.training_dataset(tf.data.Dataset.range(size), size, plan, seed)
    return dataset.batch(3).get_single_element()

  np.testing.assert_array_equal(
    batches(tf.constant(10, tf.int64), tf.constant(77, tf.int64)), np.stack(_batches(10, plan, 77))
  )


def test_an_empty_shard_gives_no_batches_and_the_fused_draw_refuses_it():
  assert _batches(0, client_data.LocalTraining(batch_size=4, local_steps=3), seed=1) == []
  assert _batches(0, client_data.LocalTraining(batch_size=4, local_epochs=2), seed=1) == []
  with pytest.raises(ValueError, match=r'positions \[1\] have no training rows'):
    shuffle.round_rows([3, 0], [1, 2], 4)


def test_orders_are_spread_evenly():
  # Each row lands in each position about equally often over many seeds (chi-square).
  size, seeds = 6, 3000
  orders = shuffle.round_rows([size] * seeds, range(seeds), size)
  counts = np.zeros((size, size))
  np.add.at(counts, (np.arange(size)[None, :], orders), 1)
  expected = seeds / size
  chi2 = float(((counts - expected) ** 2 / expected).sum())
  assert chi2 < 60  # 25 degrees of freedom: p < 1e-4 above 60.
