"""Stable fingerprints of the TFF computations a hospital's worker is asked to run.

A computation reaches a worker as TFF's own `computation_pb2.Computation`, inside
an `executor_pb2.Value`. Its bytes are not stable: TFF's compiler names lambda
parameters and block locals with a random prefix ('_xqz3'), the worker's graph
cache key is drawn per process, and TensorFlow's node debug info records the
tracing order ('cond_1_true_5390'). None of these change what the computation
does. `fingerprint` hashes the computation with exactly these normalized:
bound names renamed in binding order (a bijection, so two computations share a
fingerprint only if they are the same up to renaming), the cache key cleared,
the debug info dropped. Everything else (every op, constant, file name, type)
is hashed as sent, so a computation that differs in one constant differs in
fingerprint. TFF has no such notion; this is ours.
"""

from __future__ import annotations

import hashlib

from tensorflow.core.framework import graph_pb2
from tensorflow_federated.proto.v0 import computation_pb2, executor_pb2


def _function_refs(attr):
  """The `NameAttrList`s (function references) inside one node attribute."""
  refs = [attr.func] if attr.HasField('func') else attr.list.func if attr.HasField('list') else []
  for ref in refs:
    yield ref
    for inner in ref.attr.values():
      yield from _function_refs(inner)


def _named_functions(attrs, library) -> list[str]:
  """Library functions named by string attributes (e.g. a function's 'backward_function_name')."""
  names = []
  for key in sorted(attrs):
    text = attrs[key].s.decode('utf-8', 'replace') if attrs[key].HasField('s') else ''
    if text in library:
      names.append(text)
  return names


def _rename_functions(graph) -> None:
  """Renames library functions 'f0', 'f1'... in order of first reference from the graph.

  A reference is a function attribute, or a string attribute holding a function's
  name (TensorFlow links forward and backward functions so, with per-process numbers).
  """
  library = {f.signature.name: f for f in graph.library.function}
  names: dict[str, str] = {}

  def reach(name):
    if name in library and name not in names:
      names[name] = f'f{len(names)}'
      visit(library[name].node_def)
      for other in _named_functions(library[name].attr, library):
        reach(other)

  def visit(nodes):
    for node in nodes:
      for key in sorted(node.attr):
        for ref in _function_refs(node.attr[key]):
          reach(ref.name)
      for other in _named_functions(node.attr, library):
        reach(other)

  visit(graph.node)
  nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
  for attrs in [*(n.attr for n in nodes), *(f.attr for f in graph.library.function)]:
    for attr in attrs.values():
      for ref in _function_refs(attr):
        ref.name = names.get(ref.name, ref.name)
      if attr.HasField('s') and attr.s.decode('utf-8', 'replace') in names:
        attr.s = names[attr.s.decode('utf-8')].encode()
  for function in graph.library.function:
    function.signature.name = names.get(function.signature.name, function.signature.name)
  for gradient in graph.library.gradient:
    gradient.function_name = names.get(gradient.function_name, gradient.function_name)
    gradient.gradient_func = names.get(gradient.gradient_func, gradient.gradient_func)
  ordered = sorted(graph.library.function, key=lambda f: f.signature.name)
  graph.library.ClearField('function')
  graph.library.function.extend(ordered)


def _normalize_graph(tensorflow) -> None:
  tensorflow.ClearField('cache_key')
  graph = graph_pb2.GraphDef()
  tensorflow.graph_def.Unpack(graph)
  for node in [*graph.node, *(n for f in graph.library.function for n in f.node_def)]:
    node.ClearField('experimental_debug_info')
  _rename_functions(graph)
  tensorflow.graph_def.Pack(graph, deterministic=True)


def _normalize(comp: computation_pb2.Computation, names: dict[str, str]) -> None:
  def rename(name: str) -> str:
    return names.setdefault(name, f'v{len(names)}')

  kind = comp.WhichOneof('computation')
  if kind == 'lambda':
    function = getattr(comp, 'lambda')
    if function.parameter_name:
      function.parameter_name = rename(function.parameter_name)
    _normalize(function.result, names)
  elif kind == 'block':
    for local in comp.block.local:
      local.name = rename(local.name)
      _normalize(local.value, names)
    _normalize(comp.block.result, names)
  elif kind == 'reference':
    comp.reference.name = rename(comp.reference.name)
  elif kind == 'call':
    _normalize(comp.call.function, names)
    if comp.call.HasField('argument'):
      _normalize(comp.call.argument, names)
  elif kind == 'struct':
    for element in comp.struct.element:
      _normalize(element.value, names)
  elif kind == 'selection':
    _normalize(comp.selection.source, names)
  elif kind == 'tensorflow':
    _normalize_graph(comp.tensorflow)


def fingerprint(comp: computation_pb2.Computation) -> str:
  """The hex SHA-256 of `comp` with its random names, cache key and debug info normalized."""
  normalized = computation_pb2.Computation()
  normalized.CopyFrom(comp)
  _normalize(normalized, {})
  return hashlib.sha256(normalized.SerializeToString(deterministic=True)).hexdigest()


def short(fp: str) -> str:
  """The first 16 hex digits, as logs and errors print a fingerprint."""
  return fp[:16]


def walk_value(value: executor_pb2.Value):
  """Yields every (kind, leaf) inside a Value: 'computation', 'array' or 'sequence' leaves."""
  kind = value.WhichOneof('value')
  if kind == 'struct':
    for element in value.struct.element:
      yield from walk_value(element.value)
  elif kind == 'federated':
    for member in value.federated.value:
      yield from walk_value(member)
  elif kind is not None:
    yield kind, getattr(value, kind)
