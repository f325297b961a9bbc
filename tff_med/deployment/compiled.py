"""TFF's compilers for a remote run, each computation compiled once per process.

The coordinator compiles every computation it sends several times over: to check it
against the approved plan (`computations.worker_parts`), in each route's
`MergeableCompExecutionContext` (one per set of hospitals in a call) and, part by
part, in each worker link's `AsyncExecutionContext` (one per worker). TFF's
contexts each cache what they compiled for themselves only (`CompilerPipeline`);
given these functions as their compilers they share one cache, keyed as TFF's is
(a computation hashes its proto). Ours: TFF has no cache across contexts.
"""

from __future__ import annotations

import functools

import tensorflow_federated as tff


@functools.lru_cache(maxsize=64)
def mergeable_form(comp: tff.Computation):
  """`tff.backends.native.compile_to_mergeable_comp_form(comp)`, once per computation."""
  return tff.backends.native.compile_to_mergeable_comp_form(comp)


@functools.lru_cache(maxsize=256)
def native(comp: tff.Computation):
  """`tff.backends.native.desugar_and_transform_to_native(comp)`, once per computation."""
  return tff.backends.native.desugar_and_transform_to_native(comp)
