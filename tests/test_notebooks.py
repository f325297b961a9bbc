"""Every notebook runs top to bottom at a smoke size (Colab setup and TensorBoard cells skipped)."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = os.path.join(os.path.dirname(__file__), '..', 'notebooks')
SKIPPED_TAGS = {'colab-setup', 'tensorboard'}
NOTEBOOKS = sorted(n for n in os.listdir(NOTEBOOK_DIR) if n.endswith('.ipynb'))


@pytest.mark.parametrize('name', NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, monkeypatch):
  monkeypatch.setenv('TFF_MED_SMOKE', '1')
  notebook = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
  notebook.cells = [
    c for c in notebook.cells if not SKIPPED_TAGS & set(c.get('metadata', {}).get('tags', []))
  ]
  NotebookClient(
    notebook, timeout=300, kernel_name='python3', resources={'metadata': {'path': NOTEBOOK_DIR}}
  ).execute()


def test_notebooks_are_committed_without_outputs():
  for name in NOTEBOOKS:
    notebook = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
    assert all(not c.get('outputs') for c in notebook.cells if c.cell_type == 'code'), name
