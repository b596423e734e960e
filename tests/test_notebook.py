"""The notebook runs from top to bottom (small settings, injected after its parameters cell)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import book_path
from .helpers import need

pytestmark = pytest.mark.slow  # end to end: not in make test-fast

nbformat = need("nbformat")
nbclient = need("nbclient")

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "don_quixote.ipynb"


def test_the_committed_notebook_is_small_and_was_run_in_order():
    assert NOTEBOOK.stat().st_size < 300_000  # outputs are kept, but pictures stay small
    nb = nbformat.read(NOTEBOOK, as_version=4)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))


def test_the_notebook_runs_and_scores_its_model(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    dataset = "don-quixote" if book_path() else "wikipedia-sample"
    small = (
        f"DATASET = {dataset!r}\nWORKDIR = {str(tmp_path)!r}\n"
        "TRAIN_SECONDS = 4\nW2V_DIMS, W2V_EPOCHS = 16, 1\nTSNE_WORDS = 200"
    )
    nb.cells.insert(i + 1, nbformat.v4.new_code_cell(small))
    nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "bits/char" in text and "the -> " in text  # the score, and nearest words
    assert "copies: " in text  # the copy figures of the sample
    assert (tmp_path / "runs" / "notebook-tsne.png").is_file()
    for init in ("random", "word2vec"):
        run = tmp_path / "runs" / f"{dataset}-notebook-{init}"
        assert (run / "best.pt").is_file() and (run / "report.html").is_file()
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the t-SNE map and the loss curve
