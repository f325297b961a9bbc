"""Performance work must not change results: a small seeded run's final weights are pinned.

The numbers below are the weights `experiments.train --config=configs/heart_disease.py:smoke`
ended with before any performance tuning (2026-11-26). A change to the loop, datasets,
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
  -0.0617564, 0.4375878, 0.3979592, -0.0597279, 0.0084506, 0.0446646, 0.691221,
  -0.1604766, 0.0657154, -0.1406772, 0.0094595, -0.2049078, 0.2021831,
]  # fmt: skip
BIAS = [0.1795133]


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
  assert final['accuracy'] == pytest.approx(0.6299213, abs=1e-5)
  assert final['loss'] == pytest.approx(0.6170487, abs=1e-5)
