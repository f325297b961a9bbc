"""The package's structure: no import cycle, layers import downwards only, modules stay small."""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / 'tff_med'
# Each layer may import only the layers listed after it (and itself).
LAYERS = ['study', 'experiment', 'deployment', 'run', 'survival', 'learning', 'clients', 'data']
BASE = {'errors', 'runtime', 'contexts', 'stale_files'}  # importable from anywhere


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path: pathlib.Path) -> set[str]:
  """Every tff_med module `path` imports, at any depth of its code."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('tff_med'):
      for alias in node.names:
        candidate = f'{node.module}.{alias.name}'
        found.add(candidate if _exists(candidate) else node.module)
    elif isinstance(node, ast.Import):
      found.update(a.name for a in node.names if a.name.startswith('tff_med'))
  return found


def _exists(module: str) -> bool:
  base = ROOT.joinpath(*module.split('.'))
  return base.with_suffix('.py').exists() or (base / '__init__.py').exists()


GRAPH = {_module_name(p): _imports(p) for p in PACKAGE.rglob('*.py')}


def _layer(module: str) -> str:
  part = module.split('.')[1] if '.' in module else module
  return part


def test_there_is_no_import_cycle():
  visiting, done = [], set()

  def visit(module):
    if module in done:
      return
    if module in visiting:
      cycle = visiting[visiting.index(module) :] + [module]
      pytest.fail(f'import cycle: {" -> ".join(cycle)}')
    visiting.append(module)
    for imported in GRAPH.get(module, ()):
      visit(imported)
    visiting.pop()
    done.add(module)

  for module in GRAPH:
    visit(module)


def test_layers_import_downwards_only():
  wrong = []
  for module, imported in GRAPH.items():
    layer = _layer(module)
    if layer not in LAYERS:
      continue
    allowed = set(LAYERS[LAYERS.index(layer) :]) | BASE
    wrong += [
      f'{module} imports {i}' for i in imported if _layer(i) not in allowed and i != 'tff_med'
    ]
  assert not wrong, '\n'.join(wrong)


def test_data_is_numpy_and_files_only():
  for path in (PACKAGE / 'data').glob('*.py'):
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in names if m.split('.')[0] in ('tensorflow', 'tensorflow_federated')}, path


def test_modules_and_functions_stay_small():
  too_long = []
  for path in PACKAGE.rglob('*.py'):
    text = path.read_text()
    if len(text.splitlines()) > 300:
      too_long.append(f'{path.relative_to(ROOT)}: {len(text.splitlines())} lines')
    for node in ast.walk(ast.parse(text)):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        length = node.end_lineno - node.lineno + 1
        if length > 80:
          too_long.append(f'{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines')
  assert not too_long, '\n'.join(too_long)


@pytest.mark.parametrize('command', ['make_certificates', 'make_mask_key'])
def test_a_hospitals_key_commands_start_without_tensorflow(command):
  # Run by a hospital's IT on any machine: a second, not TensorFlow's ten.
  loaded = subprocess.run(
    [
      sys.executable,
      '-c',
      f'import sys, experiments.{command}; print("tensorflow" in sys.modules)',
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    check=True,
  )
  assert loaded.stdout.strip() == 'False'
