"""Every notebook runs top to bottom as shipped, every cell included, at a smoke size.

Like Jupyter's "Run All" (or `jupyter nbconvert --execute`): the Colab setup cell
runs too and must do nothing outside Colab; the `%tensorboard` cell starts a
real TensorBoard, which the test stops afterwards.
"""

import os
import signal

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = os.path.join(os.path.dirname(__file__), '..', 'notebooks')
NOTEBOOKS = sorted(n for n in os.listdir(NOTEBOOK_DIR) if n.endswith('.ipynb'))


def _tensorboard_pids() -> set[int]:
  pids = set()
  for entry in filter(str.isdigit, os.listdir('/proc')):
    try:
      with open(f'/proc/{entry}/cmdline', 'rb') as f:
        args = f.read().split(b'\0')
    except OSError:
      continue
    if any(os.path.basename(a) == b'tensorboard' for a in args[:2]):
      pids.add(int(entry))
  return pids


@pytest.fixture
def stops_tensorboard():
  """Stops any TensorBoard a notebook's `%tensorboard` cell started."""
  before = _tensorboard_pids()
  yield
  for pid in _tensorboard_pids() - before:
    os.kill(pid, signal.SIGTERM)


@pytest.mark.slow
@pytest.mark.parametrize('name', NOTEBOOKS)
def test_notebook_runs_top_to_bottom_as_shipped(name, monkeypatch, stops_tensorboard):
  monkeypatch.setenv('TFF_MED_SMOKE', '1')
  notebook = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
  NotebookClient(
    notebook, timeout=300, kernel_name='python3', resources={'metadata': {'path': NOTEBOOK_DIR}}
  ).execute()
  outputs = {
    tag: ''.join(o.get('text', '') for o in cell.get('outputs', []))
    for cell in notebook.cells
    for tag in cell.get('metadata', {}).get('tags', [])
  }
  assert 'Not in Colab: setup skipped' in outputs['colab-setup']


def test_notebooks_are_committed_without_outputs():
  for name in NOTEBOOKS:
    notebook = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
    assert all(not c.get('outputs') for c in notebook.cells if c.cell_type == 'code'), name
