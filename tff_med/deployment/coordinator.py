"""The remote route: a run whose hospitals are TFF workers (`experiment.train` with workers).

The coordinator holds no patient data. It learns the shard schema from the
hospitals (`schema.fetch_schema`), computes the standardization from their
federated sums, and from then on sends only model weights, shard names and
per-hospital parameters (DP noise, attack codes) and, under secure
aggregation, mask tokens (it never holds a key or a mask); each worker builds its
datasets from its own files (`shard_format`), with the same shuffling as the
simulation, so a remote run ends with the simulation's weights. The process is
the one `learning.process.build` chooses for every route; `run.sequence.execute`
does the rest.
"""

from __future__ import annotations

import contextlib
import secrets

import numpy as np
from absl import logging

from tff_med import runtime
from tff_med.clients import client_data, compose
from tff_med.data import scaling
from tff_med.deployment import computations, plan, remote_data
from tff_med.deployment.federation import RemoteFederation
from tff_med.deployment.schema import RemoteTask, fetch_schema
from tff_med.deployment.tls_identity import TlsFiles
from tff_med.learning import evaluation
from tff_med.learning.privacy import budget
from tff_med.learning.secure import masks
from tff_med.run import settings
from tff_med.run.sequence import Prepared, with_union


def _standardizer(federation, schema, moments, mode: str, width: int, extension: str):
  """The run's `scaling.Standardizer`, from sums each hospital's worker computes on its shard."""
  hospitals = schema.hospitals

  def summed(over):
    with federation.route(over):
      return moments([remote_data.client_input(h, 'train', extension=extension) for h in over])

  return scaling.standardizer_from_moments(
    mode,
    hospitals,
    width,
    hospital_moments=lambda h: summed([h]),
    federated_moments=lambda: summed(hospitals),
  )


def _federation(config, workers) -> RemoteFederation:
  d = config.deployment
  tls = TlsFiles(d.tls_cert, d.tls_key, d.tls_ca) if d.tls_cert else None
  return RemoteFederation(
    workers,
    tls=tls,
    ready_timeout=d.ready_timeout,
    call_timeout=d.call_timeout,
    probe_timeout=d.probe_timeout,
  )


@contextlib.contextmanager
def prepare(config):
  """Yields the `Prepared` remote run of `config` on the workers of `config.deployment`.

  Checks the deployment (and the approved plan, with `deployment.plan`) before
  connecting, learns the schema and the standardization from the hospitals,
  and builds the run's computations (`computations.build`) for them.

  Raises:
    ConfigError: A bad config or disagreeing shards, before any training.
    DeploymentError: A worker is unreachable, lacks its shard, or stops answering.
  """
  workers = computations.validate_deployment(config)
  if config.deployment.plan:
    plan.check_against(config, config.deployment.plan)
  features = computations.plan_features(config)
  federation = _federation(config, workers)
  with runtime.local_runtime(
    max_concurrent_computation_calls=config.runtime.max_concurrent_computation_calls
  ):
    try:
      federation.connect()
      logging.info('Connected to %d hospital worker(s): %s', len(workers), workers)
      yield _prepare(config, federation, features)
    finally:
      federation.close()


def _prepare(config, federation, features) -> Prepared:
  d = config.data
  reader = computations.format_of(config, features)
  shape = computations.image_shape(config)
  schema = fetch_schema(federation, d, reader.describe_computation(), features, shape)
  hospitals = schema.hospitals
  hospitals_fn = settings.hospitals_per_round(
    hospitals, config.algorithm.clients_per_round, config.seed
  )
  privacy_plan = budget.plan(config, {h: schema.rows[h]['train'] for h in hospitals}, hospitals_fn)
  comps = computations.build(config, schema.feature_names, hospitals, privacy_plan)
  width = computations.statistics(config, features)
  standardizer = _standardizer(
    federation, schema, comps.moments, d.scaling, width, reader.extension
  )
  stats = {h: (standardizer.mean[h], standardizer.std[h]) for h in hospitals}
  notes = _undefined_notes(schema)
  return Prepared(
    task=RemoteTask(
      schema, standardizer, config.model.to_dict(), config.seed, shape or (len(features),)
    ),
    schema=schema,
    process=comps.process,
    datasets_fn=_inputs_fn(config, schema, stats, comps),
    hospitals_fn=hospitals_fn,
    evaluator=evaluation.FederatedEvaluator(
      comps.evaluation,
      {h: _test_input(h, *stats[h], extension=reader.extension) for h in hospitals},
      notes,
      route=federation.route,
    ),
    kind='classification',
    test_sizes=with_union({h: schema.rows[h]['test'] for h in hospitals}),
    stopping=settings.stopping_rule(config.training.stopping, hospitals),
    privacy_plan=privacy_plan,
    route=federation.route,
    available=federation.available,
  )


def _test_input(hospital: str, mean, std, extension: str) -> str:
  """The client input of `hospital`'s test shard, standardized with its statistics."""
  return remote_data.client_input(hospital, 'test', mean=mean, std=std, extension=extension)


def _undefined_notes(schema) -> dict:
  counts = {h: schema.label_counts[h]['test'] for h in schema.hospitals}
  notes = {h: evaluation.undefined_reason_from_counts(c) for h, c in counts.items()}
  notes[evaluation.ALL] = evaluation.undefined_reason_from_counts(
    sum(np.abs(c) for c in counts.values())
  )
  return notes


def _inputs_fn(config, schema, stats, comps):
  """(round, hospitals) -> each hospital's client input, with its parameters or flip flag."""
  hospitals = schema.hospitals
  attack = config.attack

  def spec(round_num, h):
    return remote_data.client_input(
      h,
      'train',
      seed=client_data.shuffle_seed(config.seed, round_num, hospitals.index(h)),
      rows=schema.rows[h]['train'],
      mean=stats[h][0],
      std=stats[h][1],
      extension=comps.shard_format.extension,
    )

  def specs(round_num, round_hospitals):
    if comps.flips_labels:
      return [(np.int32(h in attack.hospitals), spec(round_num, h)) for h in round_hospitals]
    return [spec(round_num, h) for h in round_hospitals]

  tokens = None
  if comps.mask_size:
    session = secrets.token_hex(8)  # Fresh masks for every run, a resumed one included.

    def tokens(round_num, round_hospitals):
      return [
        masks.request(h, session, round_num, comps.mask_size, round_hospitals).token()
        for h in round_hospitals
      ]

  return compose.client_inputs(specs, comps.params, config.seed, tokens)
