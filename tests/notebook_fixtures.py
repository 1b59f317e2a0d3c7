"""Shared by the notebook-in-a-browser and HTML-export tests: one small trained run per test session,
tiny notebook parameters, where artefacts go, and where Chromium is."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import workbench as wb

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "tests" / "artifacts"  # git-ignored; screenshots and exported pages land here
CHROMIUM = "/usr/bin/chromium"  # Debian's package (`apt-get install chromium`); never a downloaded build

SMALL = [
    "data.shapes.num_images=600", "data.batch_size=64", "data.probe_size=120", "model.patch_size=8",
    "model.width=16", "model.depth=2", "model.heads=2", "trainer.max_epochs=1", "trainer.log_every_n_steps=3",
    "diagnostics.token_images=32", "diagnostics.probe_steps=10", "diagnostics.coherence=[]",
]


def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> wb.Run:
    """A 1-epoch run with saved embeddings, trained once per test session (whichever test asks first)."""
    root = tmp_path_factory.getbasetemp() / "tiny-notebook-run"
    run_dir = root / "runs" / "tiny"
    if run_dir.is_dir() and wb.load_run(run_dir).summary.get("status") == "completed":
        return wb.load_run(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    return wb.fit(preset="supervised", overrides=SMALL + [f"runs_dir={root / 'runs'}", "name=tiny"],
                  cache_dir=root / "data")


def explorer_parameters(run: wb.Run, runs_dir: Path, interactive: bool) -> dict:
    """Parameters that make notebooks/05_layer_explorer open ``run`` quickly."""
    return {"RUN_DIR": str(run.path), "RUNS_DIR": str(runs_dir), "INTERACTIVE": interactive, "UMAP_EPOCHS": 20,
            "LAYOUT_POINTS": 200}


def chromium_or_skip() -> str:
    """Debian's Chromium and Playwright for Python, or a skip naming what is missing (a failure on CI,
    where `make test` installs both)."""
    missing = []
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -r requirements.txt)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; `make test` should have installed them")
        pytest.skip(message)
    return CHROMIUM


def artifact_dir(name: str) -> Path:
    path = ARTIFACTS / name
    path.mkdir(parents=True, exist_ok=True)
    return path
