"""``python -m workbench bench``: every row runs (quick mode) and the comparisons are like for like."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

import workbench as wb
from workbench.bench import suite as bench
from workbench.bench.step import plain_step_times, step_intervals
from workbench.bench.views import PerSampleViews
from workbench.config import ViewsConfig
from workbench.views import config_local_size

ROWS = ["step_supervised", "step_dino", "views", "diagnostics", "layouts", "shapes"]


def _numbers(values: dict) -> list[float]:
    return [v for v in values.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _layout_benchmark_stand_in(depth, points, methods, run, runs_dir, cache_dir):
    """UMAP needs tens of seconds to compile (its own tests cover it): the bench's use of it is
    checked with a stand-in that returns a row of the same form from the run it is given."""
    assert run is not None and run.embedding_epochs(), "quick mode lays out the diagnostics run"
    return [{"method": methods[0], "layouts": depth + 1, "points": points, "seconds": 0.5, "cpu_seconds": 0.4,
             "trustworthiness": 0.9, "layer_displacement": 0.1, "epoch_displacement": 0.0, "run": str(run.path)}]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("workbench.analysis.layouts.layout_benchmark", _layout_benchmark_stand_in)
        return bench.run_bench(quick=True, runs_dir=root / "runs", cache_dir=root / "data", log=lambda _: None)


def test_quick_bench_has_every_row_with_finite_numbers(quick):
    assert [r["key"] for r in quick["rows"]] == ROWS
    for row in quick["rows"]:
        numbers = _numbers(row["values"])
        assert numbers and all(math.isfinite(v) for v in numbers), row
    values = {r["key"]: r["values"] for r in quick["rows"]}
    for key in ("step_supervised", "step_dino"):
        assert values[key]["plain_ms"] > 0 and values[key]["workbench_ms"] > 0
        assert values[key]["ratio"] == pytest.approx(values[key]["workbench_ms"] / values[key]["plain_ms"])
    assert values["views"]["ratio"] == pytest.approx(values["views"]["batched"] / values["views"]["per_sample"])
    # Quick mode is a check that every row runs, not a measurement: the share is only a percentage.
    assert 0 < values["diagnostics"]["share"] < 100 and values["layouts"]["seconds"] > 0
    # Rows with a target say whether it was met; the others leave it blank.
    assert [r["met"] is None for r in quick["rows"]] == [False, False, False, False, True, True]


def test_markdown_table_names_the_machine_and_every_row(quick, tmp_path):
    table = bench.to_markdown(quick)
    assert table.startswith("Machine: ") and "torch " in table and "QUICK MODE" in table
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + len(ROWS)  # header + one line per row
    assert "≤ 1.10" in table and "≥ 10x" in table and "≤ 15%" in table
    m = quick["machine"]
    assert m["logical_cores"] >= 1 and m["threads"] >= 1 and m["torch"] == torch.__version__


def test_main_writes_json_and_markdown(monkeypatch, tmp_path, quick, capsys):
    calls = []
    monkeypatch.setattr(bench, "run_bench", lambda **kwargs: calls.append(kwargs) or quick)
    renamed = []  # an atomic write ends with a rename onto the target
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: renamed.append(os.fspath(dst)) or real_replace(src, dst))
    bench.main(quick=True, out=str(tmp_path / "b.json"))
    saved = json.loads((tmp_path / "b.json").read_text())
    assert [r["key"] for r in saved["rows"]] == ROWS and saved["markdown"].startswith("Machine: ")
    bench.main(quick=True, out=str(tmp_path / "b.md"))
    table = bench.to_markdown(quick)
    assert (tmp_path / "b.md").read_text() == table + "\n"
    assert capsys.readouterr().out == 2 * (table + "\n")  # printed by both calls
    assert renamed == [str(tmp_path / "b.json"), str(tmp_path / "b.md")] and not list(tmp_path.glob("*.tmp"))


def test_cli_passes_the_data_directory_to_the_bench(monkeypatch, tmp_path):
    from workbench import cli

    seen = {}
    monkeypatch.setattr(bench, "run_bench", lambda **kwargs: seen.update(kwargs) or {"rows": [], "machine": {}})
    monkeypatch.setattr(bench, "to_markdown", lambda result: "table")
    assert cli.main(["bench", "--quick", "--data-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path)]) == 0
    assert seen["cache_dir"] == str(tmp_path / "cache") and seen["runs_dir"] == str(tmp_path) and seen["quick"]


def test_full_mode_layouts_row_trains_its_run_with_the_data_directory(monkeypatch, tmp_path):
    import workbench.training.fit

    trained = {}

    def fake_fit(**kwargs):
        trained.update(kwargs)
        raise RuntimeError("stop after the call")

    monkeypatch.setattr(workbench.training.fit, "fit", fake_fit)
    with pytest.raises(RuntimeError, match="stop after the call"):
        bench._layouts_row(bench.FULL, False, str(tmp_path / "runs"), None, tmp_path / "cache")
    assert trained["cache_dir"] == tmp_path / "cache"
    assert f"runs_dir={tmp_path / 'runs'}" in trained["overrides"]


def test_step_intervals_drop_warmup_and_epoch_ends():
    starts = [(0, 0.0), (0, 1.0), (0, 3.0), (1, 9.0), (1, 10.0), (1, 10.5)]
    assert step_intervals(starts, warmup=0) == [1.0, 2.0, 1.0, 0.5]
    assert step_intervals(starts, warmup=2) == [1.0, 0.5]  # from the third start on; 3 -> 9 spans an epoch end


@pytest.mark.parametrize("preset", ["supervised", "dino"])
def test_plain_loop_trains_the_same_model_as_the_workbench(tmp_path, preset):
    """Same seed, weights, batches, crops, optimiser, schedules, clipping and EMA: the plain loop's
    losses are the losses ``wb.fit`` logs (so the timing compares like with like)."""
    overrides = [*bench.TINY, "trainer.log_every_n_steps=3"]
    losses: list[float] = []
    times = plain_step_times(preset, overrides, steps=6, warmup=2, cache_dir=tmp_path / "data", losses=losses)
    assert len(times) == 6 and len(losses) == 9
    run = wb.fit(preset=preset, overrides=[*overrides, "trainer.max_steps=9", "diagnostics.enabled=false",
                                                 f"runs_dir={tmp_path}"], cache_dir=tmp_path / "data")
    logged = run.metrics.dropna(subset=["train/loss"]).set_index("step")["train/loss"]
    assert list(logged.index) == [2, 5, 8]
    # the same float32 operations in the same order: seeds 0-2 with 1 and 2 threads were bitwise equal
    assert [losses[k] for k in (2, 5, 8)] == pytest.approx(list(logged), rel=1e-5)


def test_per_sample_views_match_the_batched_shapes():
    v = ViewsConfig()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    views = PerSampleViews(images, v, patch_size=8)[0]
    small = config_local_size(v, 32, 8)
    assert small == 16
    assert [tuple(x.shape) for x in views] == [(3, 32, 32)] * v.global_crops + [(3, 16, 16)] * v.local_crops
    assert all(x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 for x in views)
