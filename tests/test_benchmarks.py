"""The benchmarks whose figures the READMEs quote still run (one small case each)."""

import pytest

from benchmarks import fused_equality
from benchmarks.jobs import CASES


@pytest.mark.slow
def test_fused_equality_measures_the_dropout_case(tmp_path):
  trajectory, per_round = fused_equality.measure(
    CASES['mlp_dropout'], rounds=2, root=str(tmp_path / 'heart')
  )
  assert trajectory < 1e-6 and per_round < 1e-6
