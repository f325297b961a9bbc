"""TFF execution contexts built from TFF's public pieces, and a way to end their threads."""

from __future__ import annotations

import tensorflow_federated as tff


def execution_context(stub_fn) -> tff.framework.SyncExecutionContext:
  """Builds TFF's sync C++ execution context; `stub_fn` returns a ready stub.

  TFF's secure-sum intrinsics have no runtime here (TFF runs them only in its
  test context, in the clear); secure aggregation is `learning.secure`'s.
  """

  def stack_fn(cardinalities):
    cardinalities.setdefault(tff.CLIENTS, 0)
    executor = tff.framework.RemoteExecutor(stub_fn())
    executor.set_cardinalities(cardinalities)
    return executor

  return tff.framework.SyncExecutionContext(
    executor_fn=tff.framework.ResourceManagingExecutorFactory(executor_stack_fn=stack_fn),
    compiler_fn=tff.backends.native.desugar_and_transform_to_native,
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
  # Done: the runner's own __del__ must not stop the loop a second time (it may be closed
  # by then, and the error is printed from the garbage collector).
  runner._finalizer = lambda loop, thread: None  # noqa: SLF001
