"""A federated run whose hospitals are remote TFF workers: `experiment.train` with workers.

The coordinator holds no patient data. It learns the shard schema from the
hospitals (`schema.fetch_schema`), computes the standardization from their
federated sums, and from then on sends only model weights and shard names; each
worker builds its datasets from its own files (`remote_data`), with the same
shuffling as the simulation, so a remote run ends with the simulation's weights.
The learning process and evaluation are TFF's own, composed with the loaders by
`tff.simulation.compose_dataset_computation_with_learning_process`.
"""

from __future__ import annotations

import numpy as np
from absl import logging

from tff_med import evaluation, experiment, manifest, outputs, run_results, runtime
from tff_med.data import client_data, scaling
from tff_med.deployment import computations, plan, remote_data
from tff_med.deployment.federation import RemoteFederation
from tff_med.deployment.tls_identity import TlsFiles
from tff_med.deployment.schema import RemoteTask, fetch_schema
from tff_med.training_loop import run_rounds


def _standardizer(federation, schema, moments, mode: str) -> scaling.Standardizer:
  """The run's standardization, from sums each hospital's worker computes on its shard."""
  hospitals = schema.hospitals

  def summed(over):
    with federation.route(over):
      return moments([remote_data.client_input(h, 'train') for h in over])

  return scaling.standardizer_from_moments(
    mode,
    hospitals,
    len(schema.feature_names),
    hospital_moments=lambda h: summed([h]),
    federated_moments=lambda: summed(hospitals),
  )


def _federation(config, workers) -> RemoteFederation:
  d = config.deployment
  tls = TlsFiles(d.tls_cert, d.tls_key, d.tls_ca) if d.tls_cert else None
  return RemoteFederation(
    workers, tls=tls, ready_timeout=d.ready_timeout, call_timeout=d.call_timeout
  )


def train_remote(config, workdir: str, *, print_fn=print) -> experiment.RunResult:
  """`experiment.train` on the hospitals' workers named in `config.deployment.workers`.

  Raises:
    ConfigError: A bad config or disagreeing shards, before any training.
    DeploymentError: A worker is unreachable, lacks its shard, or stops answering.
  """
  experiment.validate_training(config)
  workers = computations.validate_deployment(config)
  if config.deployment.plan:
    plan.check_against(config, config.deployment.plan)
  federation = _federation(config, workers)
  with runtime.local_runtime(
    max_concurrent_computation_calls=config.runtime.max_concurrent_computation_calls
  ):
    try:
      federation.connect()
      logging.info('Connected to %d hospital worker(s): %s', len(workers), workers)
      loop, task, notes, test_sizes, weights = _run(config, workdir, federation, print_fn)
      keras_model = task.keras_model()
      weights.assign_weights_to(keras_model)
    finally:
      federation.close()
  no_privacy = {'level': 'none'}  # validate_deployment refuses DP for remote runs.
  table = run_results.finish_run(
    workdir,
    loop,
    keras_model,
    task.schema,
    task.standardizer,
    test_sizes,
    notes,
    no_privacy,
    print_fn=print_fn,
  )
  return experiment.RunResult(loop, task, workdir, table, no_privacy)


def _run(config, workdir, federation, print_fn):
  describe = remote_data.describe_computation(config.data.label, config.data.num_classes)
  schema = fetch_schema(federation, config.data, describe)
  hospitals = schema.hospitals
  comps = computations.build(config, schema.feature_names, len(hospitals))
  standardizer = _standardizer(federation, schema, comps.moments, config.data.scaling)
  task = RemoteTask(schema, standardizer, config.model.to_dict(), config.seed)
  hospitals_fn = experiment.hospitals_per_round(
    hospitals, config.algorithm.clients_per_round, config.seed
  )
  stopping = experiment.stopping_rule(config.training.stopping, hospitals)
  stats = {h: (standardizer.mean[h], standardizer.std[h]) for h in hospitals}

  def datasets_fn(round_num, round_hospitals):
    return [
      remote_data.client_input(
        h,
        'train',
        seed=client_data.shuffle_seed(config.seed, round_num, hospitals.index(h)),
        rows=schema.rows[h]['train'],
        mean=stats[h][0],
        std=stats[h][1],
      )
      for h in round_hospitals
    ]

  counts = {h: schema.label_counts[h]['test'] for h in hospitals}
  notes = {h: evaluation.undefined_reason_from_counts(c) for h, c in counts.items()}
  notes[evaluation.ALL] = evaluation.undefined_reason_from_counts(
    sum(np.abs(c) for c in counts.values())
  )
  evaluator = evaluation.FederatedEvaluator(
    comps.evaluation,
    {h: remote_data.client_input(h, 'test', mean=stats[h][0], std=stats[h][1]) for h in hospitals},
    notes,
    route=federation.route,
  )
  outputs.write_config(workdir, config.to_dict())
  manifest.write_manifest(workdir, config=config.to_dict(), seeds=[config.seed], shard_files=[])
  state_manager, release_manager = outputs.create_managers(
    workdir, config.training.rounds, print_fn=print_fn
  )
  loop = run_rounds(
    comps.process,
    datasets_fn=datasets_fn,
    hospitals_fn=hospitals_fn,
    evaluate_fn=evaluator.evaluate,
    state_manager=state_manager,
    release_manager=release_manager,
    stopping=stopping,
    route=federation.route,
    **experiment.loop_settings(config.training),
  )
  test_sizes = {h: schema.rows[h]['test'] for h in hospitals}
  test_sizes[evaluation.ALL] = sum(test_sizes.values())
  return loop, task, notes, test_sizes, comps.process.get_model_weights(loop.state)
