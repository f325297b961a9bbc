"""The deploy/ recipes start the hospital worker with flags it has, over paths they mount."""

import ast
import os
import re
import shlex

import yaml

ROOT = os.path.join(os.path.dirname(__file__), '..')
DEPLOY = os.path.join(ROOT, 'deploy')
WORKER = ['uv', 'run', 'python', '-m', 'experiments.hospital_worker']


def _defined_flags() -> set[str]:
  # Read from the source: importing the binary would define its flags in this process,
  # where experiments.approve_plan (tests/test_plan.py) defines some of the same names.
  with open(os.path.join(ROOT, 'experiments', 'hospital_worker.py')) as f:
    tree = ast.parse(f.read())
  return {
    node.args[0].value
    for node in ast.walk(tree)
    if isinstance(node, ast.Call)
    and isinstance(node.func, ast.Attribute)
    and node.func.attr.startswith('DEFINE_')
  }


def _flags(args: list[str]) -> dict[str, str]:
  assert args[: len(WORKER)] == WORKER, args
  parsed = dict(arg[2:].split('=', 1) for arg in args[len(WORKER) :])
  unknown = [name for name in parsed if name not in _defined_flags()]
  assert not unknown, f'flags experiments.hospital_worker does not define: {unknown}'
  return parsed


def _commented_flags(text: str) -> dict[str, str]:
  """The flags a recipe's comments say to add for secure aggregation."""
  comments = [line for line in text.splitlines() if line.lstrip().startswith('#')]
  found = dict(re.findall(r'--(mask_\w+)=(\S+)', '\n'.join(comments)))
  assert set(found) == {'mask_key', 'mask_public_keys'}, found
  return found


def test_the_kubernetes_worker_has_its_flags_and_their_paths_mounted():
  with open(os.path.join(DEPLOY, 'hospital-worker.k8s.yaml')) as f:
    text = f.read()
  deployment = next(d for d in yaml.safe_load_all(text) if d['kind'] == 'Deployment')
  container = deployment['spec']['template']['spec']['containers'][0]
  given = _flags(container['args'])
  mounts = [m['mountPath'] for m in container['volumeMounts']]
  mounts += re.findall(r'#\s+- \{name: [\w-]+, mountPath: (\S+),', text)  # Secure aggregation.
  for name, value in {**given, **_commented_flags(text)}.items():
    if value.startswith('/'):
      assert any(value == m or value.startswith(m + '/') for m in mounts), (name, value)
  assert given['port'] == str(container['ports'][0]['containerPort'])


def test_the_systemd_worker_has_its_flags_and_reads_its_paths_read_only():
  with open(os.path.join(DEPLOY, 'hospital-worker.service')) as f:
    text = f.read()
  exec_start = re.search(r'^ExecStart=(.*?[^\\])$', text.replace('\\\n', ' '), re.M).group(1)
  command = shlex.split(exec_start)
  given = _flags([os.path.basename(command[0]), *command[1:]])
  read_only = re.search(r'^ReadOnlyPaths=(.*)$', text, re.M).group(1).split()
  secure = _commented_flags(text)
  for name in ('data_root', 'approved', 'tls_cert', 'tls_key', 'tls_ca'):
    assert any(given[name].startswith(p) for p in read_only), name
  assert secure['mask_key'].startswith('/etc/tff_med/')  # Under ReadOnlyPaths.
