"""examples/walkthrough.ipynb, run top to bottom in a real kernel on its small default data, so
that the notebook cannot rot: any cell that raises fails the test."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "walkthrough.ipynb"


def text_of(cell) -> str:
    return "".join(
        output.get("text", "") or output.get("data", {}).get("text/plain", "")
        for output in cell.get("outputs", [])
    )


@pytest.mark.slow
def test_the_walkthrough_notebook_runs_every_cell_on_small_data(tmp_path, cache_dir, monkeypatch):
    # The prepared reviews are cached where the other tests cache theirs; the bundles, the
    # model.tar.gz and the page's feedback land in a folder of the test's own.
    monkeypatch.setenv("CRITIC_CACHE", str(cache_dir))
    monkeypatch.setenv("CRITIC_WORKERS", "1")
    monkeypatch.chdir(tmp_path)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "FULL_SIZE = False" in code[0].source  # small by default, as the README says
    # Raises CellExecutionError, naming the cell and its traceback, when a cell fails.
    NotebookClient(
        notebook,
        timeout=180,  # per cell
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()

    outputs = "\n".join(text_of(cell) for cell in code)
    assert "['this', 'movie', 'was', 'not', 'good'" in outputs  # the negation is kept
    assert "answers /ping" in outputs
    assert "200 {'predictions': [{'label':" in outputs  # the reference's Lambda, unchanged
    assert "| lstm |" in outputs and "| nbsvm |" in outputs  # the comparison's table
    assert "stopped" in text_of(code[-1])
    work = tmp_path / "walkthrough"
    assert (work / "model.tar.gz").is_file()
    assert (work / "lstm" / "bundle.json").is_file() and (work / "nbsvm" / "bundle.json").is_file()
