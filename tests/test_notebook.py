"""notebooks/explore.ipynb runs top to bottom in a fresh python3 kernel and draws its pictures.

The kernel starts its own local Ray (`ray.init(address="local", num_cpus=2)`), separate from the test
session's, and shuts it down in its last cell.
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "explore.ipynb"

pytestmark = pytest.mark.slow


def test_explore_notebook_executes_and_draws(tmp_path, monkeypatch, mediapipe_models):
    work = tmp_path / "work"
    monkeypatch.setenv("IDPHOTO_NOTEBOOK_WORKDIR", str(work))
    monkeypatch.setenv("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), (
        "commit the notebook clean"
    )
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:  # show the failing cell's traceback, not nbclient's
        pytest.fail(f"notebook cell failed:\n{exc}")

    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.output_type == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) >= 2, "the input/output grid and the statistics plots"

    # it really ran the job, the resumed run and the retry of the failed photos
    assert (work / "out" / "review.html").is_file()
    assert list((work / "out" / "manifest").glob("*.parquet"))
    assert (work / "retry_failed.csv").is_file()
    assert list((work / "out-retry-u2netp" / "manifest").glob("*.parquet"))
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    assert "latest_rows keeps" in text
