"""The notebooks run headless through papermill and leave the run directory they promise."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import workbench as wb

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def test_every_notebook_is_paired_stripped_and_has_a_parameters_cell():
    import jupytext

    for ipynb in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = json.loads(ipynb.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"{ipynb.name} has outputs"
        assert "widgets" not in nb["metadata"], f"{ipynb.name} has widget state"
        assert any("parameters" in c["metadata"].get("tags", []) for c in code), f"{ipynb.name}: no parameters cell"
        paired = ipynb.with_suffix(".py")
        assert paired.is_file(), f"{ipynb.name} has no paired percent .py"
        from_py = jupytext.read(paired)
        assert [c.source for c in from_py.cells] == ["".join(c["source"]) for c in nb["cells"]], (
            f"{ipynb.name} and {paired.name} differ: run `make sync`"
        )


@pytest.mark.slow
def test_quickstart_runs_headless(tmp_path):
    out = tmp_path / "00_quickstart.ipynb"
    runs = tmp_path / "runs"
    params = {
        "INTERACTIVE": False, "MAX_EPOCHS": 1, "NUM_IMAGES": 600, "WIDTH": 16, "DEPTH": 2, "HEADS": 2,
        "BATCH_SIZE": 64, "RUNS_DIR": str(runs), "DATA_DIR": str(tmp_path / "data"), "RUN_NAME": "quick",
    }
    args = [a for k, v in params.items() for a in ("-p", k, str(v))]
    # -p parses values as Python literals where it can; strings that look like paths stay strings
    result = subprocess.run(
        [sys.executable, "-m", "papermill", str(NOTEBOOKS / "00_quickstart.ipynb"), str(out), "--cwd",
         str(NOTEBOOKS), "-k", "python3", *args],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = wb.load_run(runs / "quick")
    assert run.summary["status"] == "completed"
    assert 0.0 <= run.summary["headline"]["test/supervised/acc"] <= 1.0
    assert run.checkpoint.is_file() and not run.metrics.empty
    executed = json.loads(out.read_text())
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert html.count("plotly") > 0, "figures must be embedded as HTML so they survive export"
