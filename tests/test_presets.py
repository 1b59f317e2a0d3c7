"""Every preset trains on `shapes` on the CPU with finite losses, through the public entry point."""

import math

import pytest

import workbench as wb

SMALL = [
    "data.shapes.num_images=600", "data.batch_size=32", "model.patch_size=8", "model.width=32", "model.depth=3",
    "model.heads=4", "trainer.max_steps=20", "trainer.log_every_n_steps=5", "views.local_crops=2",
    "diagnostics.enabled=false",
]


@pytest.mark.parametrize("preset", list(wb.PRESETS))
def test_every_preset_trains_20_steps_with_finite_losses(preset, tmp_path):
    run = wb.fit(preset=preset, overrides=SMALL + [f"runs_dir={tmp_path}"], cache_dir=tmp_path / "data")
    assert run.summary["status"] == "completed" and run.summary["steps"] == 20
    m = run.metrics
    losses = [c for c in m.columns if c.startswith("train/") and c.count("/") >= 2
              and "rankme" not in c and "/monitor/" not in c]
    assert "train/loss" in m and losses, m.columns.tolist()
    for column in ["train/loss", *losses]:
        values = m[column].dropna()
        assert len(values) >= 4 and all(math.isfinite(v) for v in values), column
