"""TFF execution contexts built from TFF's public pieces, and a way to end their threads."""

from __future__ import annotations

import tensorflow_federated as tff

# Not exported by TFF; its test context is the only user (see execution_context).
from tensorflow_federated.python.core.backends.test import compiler as test_compiler


def _compile_with_emulated_secure_sum(comp):
  # As TFF's test context (tff.backends.test) compiles: secure sums become plain sums.
  comp = test_compiler.replace_secure_intrinsics_with_bodies(comp)
  return tff.backends.native.desugar_and_transform_to_native(comp)


def execution_context(
  stub_fn, *, emulate_secure_sum: bool = False
) -> tff.framework.SyncExecutionContext:
  """Builds TFF's sync C++ execution context; `stub_fn` returns a ready stub.

  With `emulate_secure_sum`, TFF's secure-sum intrinsics (used by
  `tff.learning.secure_aggregator`) are compiled to ordinary sums exactly as
  TFF's own test context does: the numerics of secure aggregation, none of its
  security. TFF has no other runtime for them.
  """

  def stack_fn(cardinalities):
    cardinalities.setdefault(tff.CLIENTS, 0)
    executor = tff.framework.RemoteExecutor(stub_fn())
    executor.set_cardinalities(cardinalities)
    return executor

  return tff.framework.SyncExecutionContext(
    executor_fn=tff.framework.ResourceManagingExecutorFactory(executor_stack_fn=stack_fn),
    compiler_fn=(
      _compile_with_emulated_secure_sum
      if emulate_secure_sum
      else tff.backends.native.desugar_and_transform_to_native
    ),
    transform_args=tff.tensorflow.transform_args,
    transform_result=tff.tensorflow.transform_result,
  )


def stop_context_thread(context) -> None:
  """Ends the event-loop thread of a TFF sync or mergeable context, which is then unusable.

  TFF's `AsyncThreadRunner` stops its thread only when collected, and the
  thread itself keeps it from being collected, so every context would leave a
  thread behind; TFF has no public way to close one. This runs TFF's own
  finalizer early.
  """
  runner = context._async_runner  # noqa: SLF001
  runner._finalizer(runner._event_loop, runner._thread)  # noqa: SLF001
