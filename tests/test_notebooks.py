"""Every lab notebook, top to bottom, in a real Jupyter kernel on the real kernel."""
from pathlib import Path

import nbformat
import pytest

from .nbrun import run_notebook

LABS = sorted((Path(__file__).resolve().parent.parent / "labs").glob("[0-9][0-9]-*.ipynb"))


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_stored_without_outputs_and_ends_with_a_check(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "store notebooks without outputs"
    assert "assert" in code[-1].source, "the last cell checks what the lab taught"


@pytest.mark.notebook
@pytest.mark.kernel
@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_notebook_runs_top_to_bottom(path):
    run_notebook(path, tag=LABS.index(path), timeout=240)
