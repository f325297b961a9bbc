"""The shard contract and every bad input it must name precisely."""

import os
import shutil

import numpy as np
import pytest

from tests.shard_fixtures import HEADER, TABLES, with_rows, write_shards
from tff_med.data.shards import check_csv_shards, load_csv_shards
from tff_med.errors import ConfigError, ShardError


def load(root, **kwargs):
  return load_csv_shards(str(root), label='outcome', **kwargs)


def test_reads_hospitals_features_and_labels(tmp_path):
  data = load(write_shards(tmp_path))
  assert data.hospitals == ['alpha', 'beta']
  assert data.feature_names == ['age', 'bmi', 'smoker']
  np.testing.assert_array_equal(data['alpha'].y_train, [1, 0, 1, 0])
  np.testing.assert_allclose(data['beta'].x_test[1], [72, 30.2, 1])
  assert data['alpha'].x_train.dtype == np.float32


def test_configured_features_are_used_in_their_order(tmp_path):
  data = load(write_shards(tmp_path), features=('bmi', 'age'))
  np.testing.assert_allclose(data['alpha'].x_train[0], [27.5, 61])


def test_text_only_column_is_not_a_feature(tmp_path):
  tables = {
    h: {s: [r + f',{h}-{i}' for i, r in enumerate(rows)] for s, rows in sp.items()}
    for h, sp in TABLES.items()
  }
  data = load(write_shards(tmp_path, tables, HEADER + ',patient_id'))
  assert data.feature_names == ['age', 'bmi', 'smoker']


@pytest.mark.parametrize('root_kind', ['missing', 'empty'])
def test_missing_or_empty_root_is_an_error(tmp_path, root_kind):
  root = tmp_path / 'shards'
  if root_kind == 'empty':
    root.mkdir()
  with pytest.raises(ShardError, match='shard root'):
    load(root)


def test_hospital_without_train_csv_names_hospital_and_file(tmp_path):
  write_shards(tmp_path)
  os.remove(tmp_path / 'beta' / 'train.csv')
  with pytest.raises(
    ShardError, match=r"hospital 'beta', file '.*beta/train.csv': file does not exist"
  ):
    load(tmp_path)


def test_columns_differing_between_hospitals_lists_missing_and_extra(tmp_path):
  write_shards(tmp_path)
  write_shards(
    tmp_path,
    {'beta': {'train': ['66,29.9,1,1,3'], 'test': ['48,25.1,0,0,3']}},
    'age,bmi,outcome,smoker_new,children',
  )
  with pytest.raises(
    ShardError, match=r"hospital 'beta'.*missing \['smoker'\], extra \['children', 'smoker_new'\]"
  ):
    load(tmp_path)


def test_non_numeric_feature_value_names_column_and_row(tmp_path):
  write_shards(tmp_path, with_rows('alpha', 'train', ['61,27.5,1,1', '45,heavy,0,0']))
  with pytest.raises(
    ShardError,
    match=r"hospital 'alpha', file '.*alpha/train.csv', column 'bmi', row 2: value 'heavy' is not a number",
  ):
    load(tmp_path)


def test_missing_value_is_an_error_by_default(tmp_path):
  write_shards(tmp_path, with_rows('beta', 'test', ['48,,0,0', '72,30.2,1,1']))
  with pytest.raises(
    ShardError, match=r"hospital 'beta', .*test.csv', column 'bmi', row 1: value is missing"
  ):
    load(tmp_path)


def test_drop_rows_policy_drops_and_says_how_many(tmp_path):
  write_shards(tmp_path, with_rows('alpha', 'train', ['61,27.5,1,1', '45,?,0,0', '70,31.0,1,1']))
  data = load(tmp_path, missing='drop_rows')
  assert len(data['alpha'].y_train) == 2
  assert any('dropped 1 of 3 rows' in note for note in data['alpha'].notes)


def test_impute_mean_uses_the_hospitals_own_training_mean(tmp_path):
  write_shards(tmp_path, with_rows('alpha', 'train', ['60,20,1,1', '40,,0,0', '50,30,1,1']))
  data = load(tmp_path, missing='impute_mean')
  assert data['alpha'].x_train[1, 1] == pytest.approx(25.0)
  assert any('filled missing values in 1 rows' in note for note in data['alpha'].notes)


def test_label_outside_declared_classes_names_row(tmp_path):
  write_shards(tmp_path, with_rows('beta', 'train', ['66,29.9,1,1', '50,23.4,0,2']))
  with pytest.raises(
    ShardError, match=r"column 'outcome', row 2: label 2 is outside the declared classes \[0, 1\]"
  ):
    load(tmp_path)


def test_multiclass_labels_are_accepted_when_declared(tmp_path):
  write_shards(tmp_path, with_rows('beta', 'train', ['66,29.9,1,1', '50,23.4,0,2']))
  assert load(tmp_path, num_classes=3)['beta'].y_train.tolist() == [1, 2]


def test_train_shard_without_rows_is_an_error(tmp_path):
  write_shards(tmp_path, with_rows('beta', 'train', []))
  with pytest.raises(
    ShardError, match=r"hospital 'beta', .*train.csv': training shard has no rows"
  ):
    load(tmp_path)


def test_empty_test_shard_is_not_an_error(tmp_path):
  data = load(write_shards(tmp_path, with_rows('beta', 'test', [])))
  assert len(data['beta'].y_test) == 0


def test_truncated_file_is_detected(tmp_path):
  write_shards(tmp_path)
  path = tmp_path / 'alpha' / 'train.csv'
  path.write_text(path.read_text()[:-5])  # Cut mid-row, as an interrupted copy would.
  with pytest.raises(
    ShardError,
    match=r"alpha/train.csv', row 4: has 2 fields but the header has 4 \(the file looks truncated\)",
  ):
    load(tmp_path)


def test_missing_label_column_is_an_error(tmp_path):
  write_shards(tmp_path)
  with pytest.raises(ShardError, match="label column 'diagnosis' not found"):
    load_csv_shards(str(tmp_path), label='diagnosis')


def test_unknown_missing_policy_is_a_config_error(tmp_path):
  with pytest.raises(ConfigError, match='drop_rows'):
    load(write_shards(tmp_path), missing='ignore')


def test_the_shard_that_differs_from_the_others_is_named_with_a_separator_hint(tmp_path):
  write_shards(tmp_path, {**TABLES, 'gamma': TABLES['beta']})
  semicolons = [r.replace(',', ';') for r in TABLES['alpha']['train']]
  write_shards(tmp_path, {'alpha': {'train': semicolons}}, HEADER.replace(',', ';'))
  with pytest.raises(
    ShardError,
    match=r"hospital 'alpha', file '.*alpha/train.csv': columns differ from those of the other 5 "
    r'shard files: .*separated by something other than commas',
  ):
    load(tmp_path)


def test_a_value_too_large_for_float32_names_the_cell(tmp_path):
  write_shards(tmp_path, with_rows('beta', 'train', ['66,1e308,1,1', '50,23.4,0,0']))
  with pytest.raises(
    ShardError, match=r"hospital 'beta', .*column 'bmi', row 1: value '1e308' is too large"
  ):
    load(tmp_path)


def test_a_file_that_is_not_utf8_names_the_file_and_row(tmp_path):
  write_shards(tmp_path)
  path = tmp_path / 'beta' / 'test.csv'
  path.write_bytes(path.read_bytes() + 'Z\xfcrich,1,1,1\n'.encode('latin-1'))
  with pytest.raises(
    ShardError,
    match=r"hospital 'beta', file '.*beta/test.csv': is not UTF-8 text: byte 0xfc in row 3",
  ):
    load(tmp_path)


def test_the_label_listed_as_a_feature_is_refused(tmp_path):
  with pytest.raises(ConfigError, match="data.features lists the label column 'outcome'"):
    load(write_shards(tmp_path), features=('age', 'outcome'))


@pytest.mark.parametrize('link', ['hospital', 'file'])
def test_links_leading_outside_the_root_are_refused(tmp_path, link):
  root, outside = tmp_path / 'root', tmp_path / 'outside'
  write_shards(root)
  write_shards(outside)
  if link == 'hospital':
    shutil.rmtree(root / 'beta')
    os.symlink(outside / 'beta', root / 'beta')
  else:
    os.remove(root / 'beta' / 'train.csv')
    os.symlink(outside / 'beta' / 'train.csv', root / 'beta' / 'train.csv')
  with pytest.raises(
    ShardError,
    match=r"hospital 'beta', .*is a link to .*/outside/beta.*, outside the shard root .*/root; copy",
  ):
    load(root)


def test_a_link_inside_the_root_is_followed(tmp_path):
  write_shards(tmp_path)
  os.rename(tmp_path / 'beta' / 'test.csv', tmp_path / 'beta' / 'test_v2.csv')
  os.symlink('test_v2.csv', tmp_path / 'beta' / 'test.csv')
  assert len(load(tmp_path)['beta'].y_test) == 2


def test_one_class_training_shard_and_single_hospital_are_warned_about(tmp_path, caplog):
  tables = {'alpha': with_rows('alpha', 'train', ['61,27.5,1,1', '70,31.0,1,1'])['alpha']}
  load(write_shards(tmp_path, tables))
  warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
  assert any('Only one hospital (alpha)' in w for w in warnings)
  assert any('Hospital alpha: every training label in' in w and 'is 1' in w for w in warnings)


def test_a_hospital_worker_checks_every_numeric_cell_without_a_label(tmp_path):
  write_shards(tmp_path)
  assert check_csv_shards(str(tmp_path)) == ['alpha', 'beta']
  write_shards(tmp_path, with_rows('beta', 'test', ['48,,0,0']))
  # A gap is the study's call (data.missing, in the plan), checked when the coordinator asks.
  assert check_csv_shards(str(tmp_path)) == ['alpha', 'beta']
  write_shards(tmp_path, with_rows('beta', 'test', ['48,tall,0,0']))
  with pytest.raises(
    ShardError, match=r"hospital 'beta', .*column 'bmi', row 1: value 'tall' is not"
  ):
    check_csv_shards(str(tmp_path))


def test_a_hospital_worker_serving_one_hospital_is_not_warned_about(tmp_path, caplog):
  write_shards(tmp_path, {'alpha': TABLES['alpha']})
  assert check_csv_shards(str(tmp_path)) == ['alpha']
  assert not [r for r in caplog.records if 'Only one hospital' in r.getMessage()]
