"""``python -m workbench gpucheck``: the dry run walks every part on the CPU, the command refuses to
start without CUDA, and its pieces (loss comparison, FLOP formula, peak table, budgets, the
notebooks' GPU settings, the synthetic CIFAR-10) are checked against worked cases."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
import torch

import workbench as wb
from workbench.bench.gpucheck import PARTS, to_markdown
from workbench.bench.gpucheck_runs import LOSS_TOLERANCE, PartBudget, _run_items, compare_losses
from workbench.bench.notebook_scales import notebook_runs, write_synthetic_cifar10
from workbench.bench.throughput import BackboneFlops, flop_counter, peak_tflops, vit_forward_flops
from workbench.cli import main as cli_main

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


# ---- the dry run -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """One dry run of the whole command through the CLI, from an empty working directory."""
    where = tmp_path_factory.mktemp("gpucheck")
    before = os.getcwd()
    os.chdir(where)
    try:
        import contextlib
        import io

        stdout = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(stdout):
            code = cli_main(["gpucheck", "--dry-run", "--out", "gpucheck.json"])
        seconds = time.perf_counter() - start
    finally:
        os.chdir(before)
    return {"code": code, "stdout": stdout.getvalue(), "json": json.loads((where / "gpucheck.json").read_text()),
            "dir": where, "seconds": seconds}


def test_dry_run_completes_every_part_ok(dry_run):
    result = dry_run["json"]
    assert dry_run["code"] == 0, to_markdown(result)
    assert result["dry_run"] is True
    assert list(result["parts"]) == list(PARTS)
    for key, part in result["parts"].items():
        # bf16-mixed against 32-true at 3 steps of a width-16 model on the CPU: within LOSS_TOLERANCE
        # by a wide margin -- at width 32 over 50 steps (every preset, seeds 0 and 1) the first steps
        # differed by at most 0.22% (bound 2%) and the means of the last 10 by 3.7% (bound 10%)
        assert part["status"] == "ok", (key, [i for i in part["items"] if i["status"] != "ok"] or part.get("reason"))
        assert part["items"], key
        assert all(i["status"] == "ok" for i in part["items"]), key


def test_dry_run_covers_every_preset_and_says_what_it_substituted(dry_run):
    parts = dry_run["json"]["parts"]
    presets = list(wb.PRESETS)
    assert [i["name"] for i in parts["precision"]["items"]] == presets
    assert [i["name"] for i in parts["sync"]["items"]] == presets
    assert all(i["watched"] >= 1 for i in parts["sync"]["items"])
    assert all(i["finite"] and i["steps"] == 3 for i in parts["precision"]["items"])
    # every CUDA-only path names its CPU substitute
    for key in ("precision", "compile", "throughput", "sync", "diagnostics"):
        assert parts[key]["substitutes"], key
    assert "eager" in " ".join(parts["compile"]["substitutes"])
    assert "HostSyncRecorder" in " ".join(parts["sync"]["substitutes"])
    assert "ru_maxrss" in " ".join(parts["throughput"]["substitutes"])
    names = {i["name"] for i in parts["throughput"]["items"]}
    assert names == {f"{p} @ {b}" for p in ("supervised", "dino", "mae") for b in (8, 16)}
    for item in parts["throughput"]["items"]:
        assert item["images_per_s"] > 0 and item["model_gflop_per_image"] > 0 and item["peak_memory_mib"] > 0
    # every notebook's runs at every GPU scale are listed; each notebook's first run at `gpu` trained
    notebooks = parts["notebooks"]["items"]
    runs = notebook_runs("data")
    assert sorted(i["name"] for i in notebooks) == sorted(r.name for r in runs)
    trained = [i["name"] for i in notebooks if i["trained"]]
    assert len(trained) == len({r.notebook for r in runs}) == 7 and all(" [gpu] / " in n for n in trained)


def test_dry_run_prints_the_table_and_writes_nothing_else(dry_run):
    out = dry_run["stdout"]
    assert "| part | check | status | result | time |" in out and "DRY RUN" in out
    for key, (letter, _) in PARTS.items():
        assert f"| ({letter}) {key} |" in out
    assert dry_run["json"]["markdown"] == out.strip()
    assert sorted(p.name for p in dry_run["dir"].iterdir()) == ["gpucheck.json"]  # runs went to a temporary dir


def test_refuses_to_start_without_cuda(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpucheck.json"
    assert cli_main(["gpucheck", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA GPU" in err and "--dry-run" in err
    assert not out.exists()


def test_unknown_part_is_refused(tmp_path, capsys):
    assert cli_main(["gpucheck", "--dry-run", "--parts", "precision,speed"]) == 2
    assert "--parts='speed' is invalid" in capsys.readouterr().err


# ---- the pieces --------------------------------------------------------------------------------


def test_compare_losses_against_worked_values():
    # first step 2.0 -> 2.02: 1%; means of the last 2: 1.0 and 1.015 -> 1.5%; steps 1%, 5%, 2%
    c = compare_losses([2.0, 1.0, 1.0], [2.02, 1.05, 0.98], tail=2, first=0.02, mean=0.02)
    assert c["ok"] and c["worst_step"] == 1
    assert c["first_rel"] == pytest.approx(0.01) and c["mean_rel"] == pytest.approx(0.015)
    assert c["step_rel"] == pytest.approx(0.05)  # reported, not judged
    assert not compare_losses([2.0, 1.0, 1.0], [2.02, 1.05, 0.98], tail=2, first=0.005, mean=0.02)["ok"]
    assert not compare_losses([2.0, 1.0, 1.0], [2.02, 1.05, 0.98], tail=2, first=0.02, mean=0.01)["ok"]
    # a loss falling to 0 is compared on the scale of floor x its first value (0.05 x 1.0)
    c = compare_losses([1.0, 0.001, 0.0], [1.0, 0.03, 0.02], tail=1, floor=0.05, mean=1.0)
    assert c["first_rel"] == 0.0 and c["mean_rel"] == pytest.approx(0.02 / 0.05)
    assert c["step_rel"] == pytest.approx(0.029 / 0.05)
    # non-finite losses, unequal lengths and empty runs never agree
    assert not compare_losses([1.0, 2.0], [1.0, math.nan])["ok"]
    assert not compare_losses([1.0, 2.0], [1.0, 2.0, 3.0])["ok"]
    assert not compare_losses([], [])["ok"]
    assert compare_losses([1.0, 2.0], [1.0, 2.0])["ok"] and LOSS_TOLERANCE["first"] < LOSS_TOLERANCE["mean"]


def test_vit_forward_flops_by_hand_and_by_torch_counter():
    # 2 images, 4 patches of 2 x 2 x 3, width 8, 5 tokens, depth 3:
    # embed 2*4*3*4*8 = 768; block 24*5*64 + 4*25*8 = 8480; 2 * (768 + 3 * 8480) = 52416
    assert vit_forward_flops(2, 4, 5, 8, 3, 4.0, 3, 2) == 52416.0
    from workbench.models.vit import VisionTransformer

    model = VisionTransformer(image_size=8, patch_size=4, width=16, depth=2, heads=2)
    x = torch.randn(3, 3, 8, 8)
    counter, hooks = flop_counter(), BackboneFlops().attach(model)
    with torch.no_grad(), counter:
        model(x)
    hooks.detach()
    expected = vit_forward_flops(3, 4, 5, 16, 2, 4.0, 3, 4)  # 4 patches + CLS
    assert counter.get_total_flops() == expected  # torch counts the same convolution, matmuls and attention
    assert hooks.total == expected and hooks.forwards == [{"batch": 3, "tokens": 5, "backward": False}]
    hooks = BackboneFlops().attach(model)
    model(x, keep=torch.tensor([[0, 1]] * 3)).final.sum().backward()  # 2 kept patches: 3 tokens, with backward
    hooks.detach()
    assert hooks.total == 3 * vit_forward_flops(3, 4, 3, 16, 2, 4.0, 3, 4)


def test_peak_table_by_device_name():
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops("NVIDIA GH200 480GB") == 989.0
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops("NVIDIA L40S") == 362.0 and peak_tflops("NVIDIA L4") == 121.0
    assert peak_tflops("NVIDIA GeForce GTX 1080") is None


def test_items_stop_at_the_budget_and_errors_are_items():
    def one(name):
        if name == "bad":
            raise RuntimeError("boom")
        return {"name": name, "status": "ok"}

    items = _run_items(PartBudget(time.perf_counter() + 3600, 0.0), ["a", "bad"], one, lambda _: None)
    assert [i["status"] for i in items] == ["ok", "error"] and "RuntimeError: boom" in items[1]["error"]
    items = _run_items(PartBudget(time.perf_counter() - 1, 0.0), ["a"], one, lambda _: None)
    assert items[0]["status"] == "not run" and "time budget" in items[0]["reason"]


def test_synthetic_cifar10_reads_as_cifar10(tmp_path):
    from workbench.data.real import load_cifar10

    data = load_cifar10(write_synthetic_cifar10(tmp_path, per_batch=20))
    assert data.train.images.shape == (100, 3, 32, 32) and data.test.images.shape == (20, 3, 32, 32)
    assert data.train.images.dtype == torch.uint8 and data.classes[0] == "airplane" and len(data.classes) == 10
    assert data.train.labels[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


# ---- the notebooks' GPU settings are the notebooks' own -----------------------------------------


def _code_cells(path: Path) -> list[tuple[str, str]]:
    """(header, source) of every code cell of a jupytext percent-format notebook."""
    cells, header, lines = [], None, []
    for line in path.read_text().splitlines():
        if line.startswith("# %%"):
            if header is not None and "[markdown]" not in header:
                cells.append((header, "\n".join(lines)))
            header, lines = line, []
        elif header is not None:
            lines.append(line)
    if header is not None and "[markdown]" not in header:
        cells.append((header, "\n".join(lines)))
    return cells


class _Captured(Exception):
    pass


def _notebook_configs(name: str, scale: str, tmp_path: Path, data_dir: str, monkeypatch) -> dict:
    """The configs notebook ``name`` trains at ``SCALE = scale``, by run label: its parameters and
    set-up cells executed with that scale (notebook 05: its training cell, stopped at ``wb.fit``)."""
    from workbench.analysis.experiments import variant_config
    from workbench.presets import make_config

    cells = _code_cells(NOTEBOOKS / f"{name}.py")
    first = next(i for i, (header, _) in enumerate(cells) if "parameters" in header)
    ns: dict = {}
    exec(cells[first][1], ns)
    ns.update(SCALE=scale, INTERACTIVE=False, RUNS_DIR=str(tmp_path / "runs"), DATA_DIR=data_dir)
    exec(cells[first + 1][1], ns)
    if name == "00_quickstart":
        return {"quickstart": ns["config"]}
    if name == "05_layer_explorer":
        def fit(config, **kwargs):
            raise _Captured(config)

        monkeypatch.setattr(wb, "fit", fit)
        with pytest.raises(_Captured) as captured:
            exec(cells[first + 2][1], ns)
        return {"explorer": captured.value.args[0]}
    if name == "06_compare_runs":
        return {p: make_config(p, ns["overrides"]) for p in ns["presets"]}
    return {label: variant_config(label, v, ns["common"], runs_dir=tmp_path / "runs")
            for label, v in ns["VARIANTS"].items()}


_SCALES = sorted({(r.notebook, r.scale) for r in notebook_runs("data")})


def test_every_training_notebook_and_gpu_scale_is_covered():
    from workbench.analysis.notebook import SCALES

    expected = {(n, s) for n, scales in SCALES.items() for s in scales if s.startswith("gpu")}
    assert set(_SCALES) == expected | {("05_layer_explorer", "gpu")}


@pytest.mark.parametrize("notebook,scale", _SCALES)
def test_gpu_runs_equal_the_notebooks(notebook, scale, tmp_path, monkeypatch, capsys):
    from workbench.config import SEED_FIELDS, changed_fields
    from workbench.presets import make_config

    monkeypatch.setattr(wb.plots, "use_notebook_renderer", lambda: None)
    data_dir = str((tmp_path / "data").resolve())
    theirs = _notebook_configs(notebook, scale, tmp_path, data_dir, monkeypatch)
    ours = {r.label: make_config(r.preset, r.overrides) for r in notebook_runs(data_dir)
            if (r.notebook, r.scale) == (notebook, scale)}
    assert list(ours) == list(theirs)
    # notebook 05 leaves data.root to the default search; the check points it at its CIFAR-10
    ignore = (*SEED_FIELDS, "data.root") if notebook == "05_layer_explorer" else SEED_FIELDS
    for label, config in theirs.items():
        assert changed_fields(config, ours[label], ignore=ignore) == [], label
        if config.data.name == "cifar10" and notebook != "05_layer_explorer":
            assert config.data.root == ours[label].data.root == data_dir
