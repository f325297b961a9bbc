"""Performance work must not change results: a small seeded run's final weights are pinned.

The numbers below are the weights `experiments.train --config=configs/heart_disease.py:smoke`
ends with: from before any performance tuning (2026-11-26), re-pinned once when each
pass's row order became `clients/shuffle.py`'s stateless draw (2026-12-05). A change to the loop, datasets,
runtime or evaluation that alters them alters the science; update them only with a reason
in the commit message. The fused engine (`tff_med/fused.py`) must end with the same
weights.
"""

import numpy as np
import pytest

from configs import heart_disease
from tff_med import experiment
from tff_med.run import export

KERNEL = [
  -0.0658692, 0.4407479, 0.3924959, -0.0611408, 0.0099441, 0.0409909, 0.689873,
  -0.1647207, 0.0641634, -0.1415717, 0.0117749, -0.213357, 0.1979549,
]  # fmt: skip
BIAS = [0.1795807]


@pytest.mark.parametrize('engine', ['tff', 'fused'])
def test_seeded_smoke_run_ends_with_the_pinned_weights_and_metrics(tmp_path, engine):
  config = heart_disease.get_config('smoke')
  config.runtime.engine = engine
  config.data.root = str(tmp_path / 'heart')
  result = experiment.train(config, str(tmp_path / 'run'), print_fn=lambda _: None)
  model, _ = export.load_exported(str(tmp_path / 'run'))
  kernel, bias = model.get_weights()
  np.testing.assert_allclose(kernel.ravel(), KERNEL, atol=1e-5)
  np.testing.assert_allclose(bias, BIAS, atol=1e-5)
  final = result.loop.final_eval['all']
  assert final['accuracy'] == pytest.approx(0.6259843, abs=1e-5)
  assert final['loss'] == pytest.approx(0.6174344, abs=1e-5)
