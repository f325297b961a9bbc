"""Splitting a pooled table with a site column into shards."""

import pandas as pd
import pytest

from tff_med.data.shards import load_csv_shards
from tff_med.data.split import site_directory_name, write_site_shards
from tff_med.errors import ShardError

TABLE = pd.DataFrame(
  {
    'site': ['North Clinic'] * 4 + ['South'] * 3,
    'age': [61, 45, 70, 38, 66, 50, 59],
    'outcome': [1, 0, 1, 0, 1, 0, 1],
  }
)


def test_writes_readable_shards_per_site(tmp_path):
  sizes = write_site_shards(TABLE, 'site', str(tmp_path), test_fraction=0.34, seed=1)
  assert sizes == {'north_clinic': (2, 2), 'south': (1, 2)}
  data = load_csv_shards(str(tmp_path), label='outcome')
  assert data.hospitals == ['north_clinic', 'south'] and data.feature_names == ['age']


def test_site_names_become_safe_directories():
  assert site_directory_name(' VA Long Beach ') == 'va_long_beach'


def test_missing_site_is_an_error_naming_the_row(tmp_path):
  table = TABLE.copy()
  table.loc[2, 'site'] = None
  with pytest.raises(ShardError, match="column 'site', row 3: site is missing"):
    write_site_shards(table, 'site', str(tmp_path))
