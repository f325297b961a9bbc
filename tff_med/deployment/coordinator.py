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

import dataclasses

import numpy as np
import tensorflow_federated as tff
from absl import logging

from tff_med import (
  algorithms,
  evaluation,
  experiment,
  federated_stats,
  manifest,
  outputs,
  run_results,
  runtime,
)
from tff_med.data import client_data, scaling
from tff_med.deployment import remote_data
from tff_med.deployment.addresses import parse_workers
from tff_med.deployment.federation import RemoteFederation, TlsFiles
from tff_med.deployment.schema import RemoteTask, fetch_schema
from tff_med.errors import ConfigError
from tff_med.training_loop import run_rounds


def validate_deployment(config) -> dict[str, str]:
  """Checks what a remote run supports; returns {hospital: address}.

  Raises:
    ConfigError: Malformed or duplicate workers, incomplete TLS files, or a
      feature that runs only in simulation.
  """
  d = config.deployment
  workers = parse_workers(d.workers)
  tls = [d.tls_cert, d.tls_key, d.tls_ca]
  if any(tls) and not all(tls):
    raise ConfigError('mutual TLS needs all of deployment.tls_cert, tls_key and tls_ca')
  for name in ('ready_timeout', 'call_timeout'):
    if not d[name] > 0:
      raise ConfigError(f'deployment.{name} must be > 0 seconds, got {d[name]}')
  simulation_only = {
    'data.source=npz': config.data.source == 'npz',
    f'data.missing={config.data.missing!r} (workers validate with missing=error)': (
      config.data.missing != 'error'
    ),
    f'privacy.level={config.privacy.level!r}': config.privacy.level != 'none',
    f'attack.kind={config.attack.kind!r}': config.attack.kind != 'none',
    f'runtime.engine={config.runtime.engine!r}': config.runtime.engine != 'tff',
  }
  refused = [name for name, on in simulation_only.items() if on]
  if refused:
    raise ConfigError(f'remote deployments do not support {", ".join(refused)} yet')
  return workers


def _standardizer(federation, schema, shard_format, mode: str) -> scaling.Standardizer:
  """The run's standardization, from sums each hospital's worker computes on its shard."""
  hospitals = schema.hospitals
  moments = tff.simulation.compose_dataset_computation_with_computation(
    shard_format.features_computation(),
    federated_stats.dataset_moments_computation(len(schema.feature_names)),
  )

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
  workers = validate_deployment(config)
  plan = experiment.local_training(config.data)
  federation = _federation(config, workers)
  with runtime.local_runtime(
    max_concurrent_computation_calls=config.runtime.max_concurrent_computation_calls
  ):
    try:
      federation.connect()
      logging.info('Connected to %d hospital worker(s): %s', len(workers), workers)
      loop, task, notes, test_sizes, weights = _run(config, workdir, plan, federation, print_fn)
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


def _run(config, workdir, plan, federation, print_fn):
  schema = fetch_schema(federation, config.data)
  hospitals = schema.hospitals
  groups = {h: i for i, h in enumerate(hospitals)}
  raw = remote_data.ShardFormat.unscaled(
    schema.columns, schema.feature_names, schema.label, schema.num_classes
  )
  standardizer = _standardizer(federation, schema, raw, config.data.scaling)
  shard_format = dataclasses.replace(
    raw,
    mean=np.stack([standardizer.mean[h] for h in hospitals]),
    std=np.stack([standardizer.std[h] for h in hospitals]),
  )
  task = RemoteTask(schema, standardizer, config.model.to_dict(), config.seed)
  hospitals_fn = experiment.hospitals_per_round(
    hospitals, config.algorithm.clients_per_round, config.seed
  )
  stopping = experiment.stopping_rule(config.training.stopping, hospitals)
  process = tff.simulation.compose_dataset_computation_with_learning_process(
    shard_format.train_computation(plan),
    algorithms.build_learning_process(task.model_fn(), config.algorithm, len(hospitals)),
  )

  def datasets_fn(round_num, round_hospitals):
    return [
      remote_data.client_input(
        h,
        'train',
        seed=client_data.shuffle_seed(config.seed, round_num, hospitals.index(h)),
        rows=schema.rows[h]['train'],
        index=groups[h],
      )
      for h in round_hospitals
    ]

  counts = {h: schema.label_counts[h]['test'] for h in hospitals}
  notes = {h: evaluation.undefined_reason_from_counts(c) for h, c in counts.items()}
  notes[evaluation.ALL] = evaluation.undefined_reason_from_counts(sum(counts.values()))
  evaluator = evaluation.FederatedEvaluator(
    tff.simulation.compose_dataset_computation_with_learning_process(
      shard_format.test_computation(config.data.eval_batch_size),
      tff.learning.algorithms.build_fed_eval(
        task.model_fn(), loop_implementation=tff.learning.LoopImplementation.DATASET_ITERATOR
      ),
    ),
    {h: remote_data.client_input(h, 'test', index=groups[h]) for h in hospitals},
    notes,
    route=federation.route,
  )
  outputs.write_config(workdir, config.to_dict())
  manifest.write_manifest(workdir, config=config.to_dict(), seeds=[config.seed], shard_files=[])
  state_manager, release_manager = outputs.create_managers(
    workdir, config.training.rounds, print_fn=print_fn
  )
  loop = run_rounds(
    process,
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
  return loop, task, notes, test_sizes, process.get_model_weights(loop.state)
