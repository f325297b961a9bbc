"""A study's runs share one local TFF worker (`runtime.shared_local_runtime`)."""

from __future__ import annotations

import functools

from tff_med import runtime


def one_worker_per_study(study_fn):
  """Decorates `study_fn(config, ...)` so its runs share one worker (`shared_local_runtime`)."""

  @functools.wraps(study_fn)
  def run(config, *args, **kwargs):
    calls = config.runtime.max_concurrent_computation_calls
    with runtime.shared_local_runtime(max_concurrent_computation_calls=calls):
      return study_fn(config, *args, **kwargs)

  return run
