"""TFF silently zeroes a non-finite client update; tff_med must notice and say who (either engine)."""

import dataclasses

import numpy as np
import pytest

from configs import heart_disease
from tests.shard_fixtures import write_shards
from tff_med import runtime
from tff_med.clients import client_data
from tff_med.data import shards
from tff_med.errors import NonFiniteUpdateError
from tff_med.learning import algorithms, fused_run
from tff_med.learning import task as task_lib
from tff_med.run import stopping
from tff_med.run.attendance import Attendance
from tff_med.run.loop import run_rounds


class _Memory:
  def __init__(self):
    self.released = {}

  async def release(self, value, key):
    self.released[key] = value

  async def load_latest(self, structure):
    return None, 0

  async def save(self, state, version):
    pass


def _run(tmp_path, on_non_finite, engine, broken=('beta',)):
  raw = shards.load_csv_shards(write_shards(tmp_path), label='outcome')
  raw = dataclasses.replace(  # Hospitals sending garbage.
    raw,
    shards=[
      dataclasses.replace(s, x_train=np.full_like(s.x_train, np.nan)) if s.hospital in broken else s
      for s in raw.shards
    ],
  )
  config = heart_disease.get_config()
  memory = _Memory()
  with runtime.local_runtime():
    task = task_lib.create_task(
      raw, model_config={'name': 'logistic_regression'}, scaling_mode='none', seed=0
    )
    plan = client_data.LocalTraining(batch_size=2, local_steps=2)
    if engine == 'fused':
      process, datasets_fn = fused_run.process_and_datasets(config, task, plan)
    else:
      process = algorithms.build_learning_process(
        task.model_fn(), config.algorithm, len(task.data.hospitals)
      )
      train = client_data.client_data(task.data, 'train')

      def datasets_fn(r, hs):
        return client_data.round_datasets(
          train, {'alpha': 4, 'beta': 3}, hs, plan, seed=0, round_num=r
        )

    result = run_rounds(
      process,
      datasets_fn=datasets_fn,
      hospitals_fn=lambda r: ['alpha', 'beta'],
      evaluate_fn=lambda weights: {'all': {'auc': 0.5}},
      rounds=2,
      eval_every=1,
      checkpoint_every=1,
      state_manager=memory,
      release_manager=memory,
      stopping=stopping.StoppingRule('eval/all/auc'),
      on_non_finite=on_non_finite,
      attendance=Attendance(['alpha', 'beta']),
    )
  return result, memory


ENGINES = pytest.mark.parametrize('engine', ['tff', 'fused'])


@ENGINES
def test_zeroed_update_is_counted_and_the_hospital_named(tmp_path, caplog, engine):
  result, memory = _run(tmp_path, 'warn', engine)
  assert memory.released[1]['train/zero_weight_clients'] == 1
  assert result.non_finite_rounds == [1, 2]
  assert any(
    'Round 1: the non-finite update of 1 hospital(s) (beta) was zeroed' in r.getMessage()
    for r in caplog.records
  )


@ENGINES
def test_on_non_finite_error_stops_the_run(tmp_path, engine):
  with pytest.raises(NonFiniteUpdateError, match=r'Round 1: .*\(beta\)'):
    _run(tmp_path, 'error', engine)


@ENGINES
def test_a_run_whose_every_round_was_zeroed_does_not_end_as_a_success(tmp_path, engine):
  with pytest.raises(NonFiniteUpdateError, match='every round from 1 to 2 was non-finite'):
    _run(tmp_path, 'warn', engine, broken=('alpha', 'beta'))
