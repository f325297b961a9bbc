"""A run on the fused engine: its engine (compiled once per model and algorithm) and inputs."""

from __future__ import annotations

import json

from tff_med.clients import client_data
from tff_med.learning import process as process_lib
from tff_med.learning.build_cache import BuildCache
from tff_med.learning.fused import FusedFedAvg

# A study's runs of one algorithm differ only in seeds: they share a compiled engine.
_ENGINES = BuildCache()


def process_and_datasets(
  config, task, plan: client_data.LocalTraining, attack=None, privacy_plan=None
):
  """The fused process and its (round, hospitals) -> [(dataset, code, seed, noise)] function.

  The datasets are built in this process with the shuffle seeds the worker
  uses for TFF (`client_data.round_datasets`), so both see the same batches;
  the attack codes, DP noise multipliers and seeds are those `learning.process`
  gives TFF's clients (DP: seeded by the hospital's index, attacks by position).
  """
  train = client_data.client_data(task.data, 'train')
  sizes = {s.hospital: len(s.y_train) for s in task.data.shards}
  patient = privacy_plan is not None and privacy_plan.level == 'patient'
  clip = privacy_plan.l2_norm_clip if patient else None
  key = (
    task.architecture(),
    json.dumps(config.algorithm.to_dict(), sort_keys=True, default=str),
    len(task.data.hospitals),
    plan.local_steps,
    (attack.kind, attack.scale, attack.noise_std) if attack else None,
    clip,
  )
  process = _ENGINES.get(
    key, lambda: FusedFedAvg(task, config.algorithm, plan.local_steps, attack, clip)
  ).starting_from(task.keras_model())
  everyone = task.data.hospitals

  def inputs(round_num, hospitals):
    datasets = client_data.round_datasets(
      train, sizes, hospitals, plan, seed=config.seed, round_num=round_num
    )
    return [
      (
        dataset,
        attack.code(h) if attack else 0,
        process_lib.client_seed(config.seed, round_num, everyone.index(h) if patient else k),
        privacy_plan.noise_multipliers[h] if patient else 0.0,
      )
      for k, (h, dataset) in enumerate(zip(hospitals, datasets, strict=True))
    ]

  return process, inputs
