"""A run on the fused engine: its engine (compiled once per model and algorithm) and inputs."""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np

from tff_med.clients import client_data
from tff_med.learning import fused_clients
from tff_med.learning import process as process_lib
from tff_med.learning.build_cache import BuildCache
from tff_med.learning.fused import FusedFedAvg

# A study's runs of one algorithm differ only in seeds: they share a compiled engine
# (unless the model has dropout, whose seeds the round compiles in); engines that train
# alike at the hospitals (another aggregator, attack or server optimizer) share its
# client work (`fused_clients.shared`).
_ENGINES = BuildCache()


class RoundInputs(NamedTuple):
  """One fused round's inputs, stacked over its hospitals (in the round's order)."""

  x: np.ndarray  # [hospital, local step, example, ...]
  y: np.ndarray
  codes: np.ndarray  # int32 [hospital]: the update-attack code (0: honest).
  seeds: np.ndarray  # int64 [hospital, ...]: the client seeds of DP noise and attacks.
  noises: np.ndarray  # float32 [hospital]: DP-SGD noise multipliers (0 without DP).


def _padded(arrays: list[np.ndarray]) -> np.ndarray:
  """[hospital, row, ...]: the hospitals' arrays, zero rows after each one's own."""
  stacked = np.zeros(
    (len(arrays), max(len(a) for a in arrays), *arrays[0].shape[1:]), arrays[0].dtype
  )
  for row, array in zip(stacked, arrays, strict=True):
    row[: len(array)] = array
  return stacked


def process_and_datasets(
  config, task, plan: client_data.LocalTraining, attack=None, privacy_plan=None
):
  """The fused process and its (round, hospitals) -> `RoundInputs` function.

  The batches are the rows `client_data.training_dataset` gives the worker for
  TFF with the same shuffle seeds (`client_data.round_indices`), so both see the
  same batches; the attack codes, DP noise multipliers and seeds are those
  `learning.process` gives TFF's clients (DP: seeded by the hospital's index,
  attacks by position).
  """
  shards = task.data.shards
  x_all = _padded([s.x_train for s in shards])
  y_all = _padded([client_data.labels(s.y_train, task.data.num_classes) for s in shards])
  sizes = [len(s.y_train) for s in shards]
  patient = privacy_plan is not None and privacy_plan.level == 'patient'
  clip = privacy_plan.l2_norm_clip if patient else None
  keras_model = task.keras_model()
  a = config.algorithm
  clients_key = fused_clients.key(task, keras_model, a, plan.local_steps, clip)
  key = (
    clients_key,
    json.dumps(a.to_dict(), sort_keys=True, default=str),
    len(task.data.hospitals),
    (attack.kind, attack.scale, attack.noise_std) if attack else None,
  )

  def build():
    clients = fused_clients.shared(clients_key, task, a, plan.local_steps, clip)
    return FusedFedAvg(task, a, clients, attack)

  process = _ENGINES.get(key, build).starting_from(keras_model)
  position = {h: i for i, h in enumerate(task.data.hospitals)}

  def inputs(round_num, hospitals) -> RoundInputs:
    rows = np.array([position[h] for h in hospitals], np.int64)
    shuffle_seeds = client_data.shuffle_seed(config.seed, round_num, rows)
    index = client_data.round_indices([sizes[r] for r in rows], shuffle_seeds, plan)
    pick = (rows[:, None, None], index)
    return RoundInputs(
      x=x_all[pick],
      y=y_all[pick],
      codes=np.array([attack.code(h) if attack else 0 for h in hospitals], np.int32),
      seeds=process_lib.client_seed(
        config.seed, round_num, rows if patient else np.arange(len(hospitals))
      ),
      noises=np.array(
        [privacy_plan.noise_multipliers[h] if patient else 0.0 for h in hospitals], np.float32
      ),
    )

  return process, inputs
