"""Computations built once per key, for the runs of one process that build the same ones.

A study runs every method for every seed; each run builds the same TFF
evaluation and the same fused round (their types depend on the model's
architecture and the algorithm, not on the seed). Tracing and compiling them
took about 2 s of each 4.4 s run (profile of the comparison study,
2026-12-05). Neither TFF nor Keras keeps such a cache across runs, so this one
is ours: a small least-recently-used map from a key to what was built.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable


class BuildCache:
  """At most `size` built values, the least recently used dropped first."""

  def __init__(self, size: int = 8):
    self._values = collections.OrderedDict()
    self._size = size

  def get(self, key: Hashable, build: Callable[[], object]):
    """The value built for `key`, building it with `build()` the first time."""
    if key in self._values:
      self._values.move_to_end(key)
      return self._values[key]
    value = self._values[key] = build()
    if len(self._values) > self._size:
      self._values.popitem(last=False)
    return value
