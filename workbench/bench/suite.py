"""``python -m workbench bench``: measurements on the current machine, printed as one markdown table.

Every figure is measured in the same process, so ratios between rows are meaningful; absolute
numbers only describe this machine (the table starts with it). The rows and their targets on two
CPU cores:

(a) training-step time of the workbench (``wb.fit``: Lightning, objectives, logging) over a plain
    PyTorch loop with the same model, loss, batch, optimiser and data, for ``supervised`` and
    ``dino`` -- at most 1.10 (:mod:`workbench.bench.step`);
(b) DINO multi-crop views made in batches on the device over torchvision v2 per-sample transforms
    in a DataLoader with one worker per core -- at least 10x (:mod:`workbench.bench.views`);
(c) the diagnostics callback's share of training time, default settings, quickstart run -- at most
    15%;
(d) the time to compute every per-layer layout of a depth-6 run (5,000 probe points, the default
    method; :func:`workbench.analysis.layouts.layout_benchmark`);

plus the ``shapes`` generator's throughput. The full run takes a few minutes on two cores;
``--quick`` runs every row at toy sizes in seconds (a check that the command works, not a
measurement).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch


def _best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Shortest wall time of ``repeats`` calls (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_shapes(num_images: int = 20000, image_size: int = 32) -> dict[str, float]:
    from ..data.shapes import ShapesParams, generate_shapes

    params = ShapesParams(num_images=num_images, image_size=image_size, seed=0)
    generate_shapes(ShapesParams(num_images=512, image_size=image_size, seed=1))  # warm-up
    seconds = _best_of(lambda: generate_shapes(params))
    return {"images": num_images, "seconds": seconds, "images_per_s": num_images / seconds}


# The quickstart notebook's default CPU run (notebooks/00_quickstart.py, parameters cell).
QUICKSTART = [
    "data.shapes.num_images=12000", "data.batch_size=128", "model.patch_size=8", "model.width=96",
    "model.depth=4", "model.heads=4", "optim.lr=2e-3", "trainer.max_epochs=8",
]

# Toy sizes for --quick: every code path, seconds in all.
TINY = [
    "data.shapes.num_images=600", "data.batch_size=32", "data.probe_size=64", "model.patch_size=8", "model.width=16",
    "model.depth=2", "model.heads=2", "trainer.max_epochs=1", "views.local_crops=2", "diagnostics.token_images=16",
    "diagnostics.probe_steps=5",
]


@dataclass(frozen=True)
class Sizes:
    overrides: tuple[str, ...]
    steps: int  # measured training steps per side and repeat
    warmup: int
    repeats: int
    view_batch: int
    view_batches: int
    shapes_images: int
    layout_depth: int
    layout_points: int


FULL = Sizes(tuple(QUICKSTART), steps=40, warmup=8, repeats=2, view_batch=128, view_batches=20,
             shapes_images=20000, layout_depth=6, layout_points=5000)
QUICK = Sizes(tuple(TINY), steps=4, warmup=2, repeats=1, view_batch=32, view_batches=2,
              shapes_images=500, layout_depth=2, layout_points=64)


def bench_diagnostics(overrides=QUICKSTART, runs_dir: str = "runs/bench", cache_dir="data") -> dict:
    """Wall time of the same run with and without the diagnostics callback (default settings)."""
    from ..training.fit import fit

    walls, run = {}, None
    for enabled in (False, True):
        run = fit(preset="supervised", overrides=[*overrides, f"diagnostics.enabled={str(enabled).lower()}",
                                                  f"runs_dir={runs_dir}"], cache_dir=cache_dir)
        walls[enabled] = run.summary["wall_s"]
    seconds = run.summary["diagnostics_s"]
    return {"without": walls[False], "with": walls[True], "diagnostics_s": seconds,
            "overhead": walls[True] / walls[False] - 1.0, "share": seconds / (walls[True] - seconds), "run": run}


def machine_info() -> dict:
    """What the numbers describe: CPU, cores, memory, torch, device, threads."""
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory = float("nan")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cuda = torch.cuda.is_available()
    return {
        "cpu": cpu, "machine": platform.machine(), "logical_cores": os.cpu_count(), "usable_cores": usable,
        "memory_gib": round(memory, 1), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if cuda else "cpu", "python": platform.python_version(),
        "system": platform.system(),
    }


@dataclass
class Row:
    """One line of the table; the numbers are kept for the JSON output."""

    key: str
    measurement: str
    workbench: str
    baseline: str
    ratio: str
    target: str
    met: bool | None
    values: dict


def _targets_met(value: float, bound: float, at_most: bool) -> bool:
    return math.isfinite(value) and (value <= bound if at_most else value >= bound)


def run_bench(quick: bool = False, skip_layouts: bool = False, runs_dir: str | Path = "runs/bench",
              cache_dir: str | Path | None = "data", log: Callable[[str], None] | None = None) -> dict:
    """Measure every row; returns ``{"machine", "rows", "quick", "wall_s", "timings"}`` (rows as
    dicts; ``timings``: the wall seconds each part took). ``log`` gets progress lines (stderr)."""
    from ..data.datamodule import TensorDataModule
    from ..presets import make_config
    from ..views import config_local_size
    from .step import compare_step
    from .views import compare_views

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    sizes = QUICK if quick else FULL
    runs_dir = str(runs_dir)
    overrides = list(sizes.overrides)
    started = time.perf_counter()
    rows: list[Row] = []
    timings: dict[str, float] = {}  # seconds each part of the benchmark took (wall clock)
    mark = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - mark[0], 1)
        mark[0] = now
        row = rows[-1]  # shown as soon as it is measured: a long run is readable while it goes on
        log(f"  -> {row.measurement}: {row.workbench} | {row.baseline} | {row.ratio} ({timings[name]:.0f} s)")

    # (a) training step against a plain loop
    for preset in ("supervised", "dino"):
        log(f"(a) training step, {preset}")
        r = compare_step(preset, overrides, sizes.steps, sizes.warmup, runs_dir, cache_dir, sizes.repeats, log)
        rows.append(Row(
            f"step_{preset}", f"(a) training step, `{preset}` (median of {r['steps']} steps)",
            f"{r['workbench_ms']:.1f} ms/step (`wb.fit`: Lightning, objectives, logging)",
            f"{r['plain_ms']:.1f} ms/step (plain PyTorch loop)", f"{r['ratio']:.2f}", "<= 1.10",
            _targets_met(r["ratio"], 1.10, True), r))
        lap(f"step_{preset}")

    # (b) multi-crop views
    log("(b) DINO multi-crop views")
    config = make_config("dino", overrides)
    data = TensorDataModule(config.data, cache_dir=cache_dir, order_seed=config.seed).prepare()
    images = data.splits["train"].images[: sizes.view_batch * 8]
    v, side = config.views, data.info.image_size
    small = config_local_size(v, side, config.model.patch_size)
    r = compare_views(images, v, config.model.patch_size, sizes.view_batch, sizes.view_batches)
    rows.append(Row(
        "views", f"(b) DINO multi-crop views ({v.global_crops} x {side} px + {v.local_crops} x {small} px per image)",
        f"{r['batched']:,.0f} images/s (batched on {r['device']})",
        f"{r['per_sample']:,.0f} images/s (torchvision v2 per sample, DataLoader, {r['workers']} workers)",
        f"{r['ratio']:.1f}x", ">= 10x", _targets_met(r["ratio"], 10.0, False), r))
    lap("views")

    # (c) diagnostics callback
    log("(c) diagnostics callback: the same run without and with it")
    d = bench_diagnostics(overrides + (["trainer.max_steps=4"] if quick else []), runs_dir, cache_dir)
    diagnostics_run = d.pop("run")
    training = d["with"] - d["diagnostics_s"]
    rows.append(Row(
        "diagnostics", "(c) diagnostics callback, default settings" + (" (quickstart run)" if not quick else ""),
        f"{d['diagnostics_s']:.1f} s of {training:.1f} s training",
        f"run wall {d['without']:.1f} s without, {d['with']:.1f} s with ({100 * d['overhead']:+.1f}%)",
        f"{100 * d['share']:.1f}%", "<= 15%", _targets_met(d["share"], 0.15, True), d))
    lap("diagnostics")

    # (d) layouts
    if not skip_layouts:
        log("(d) per-layer layouts")
        rows.append(_layouts_row(sizes, quick, runs_dir, diagnostics_run, cache_dir))
        lap("layouts")

    log("shapes generation")
    s = bench_shapes(sizes.shapes_images)
    rows.append(Row("shapes", "`shapes` generation, 32 x 32", f"{s['images_per_s']:,.0f} images/s", "", "", "", None,
                    s))
    lap("shapes")
    return {"machine": machine_info(), "quick": quick, "rows": [asdict(r) for r in rows],
            "wall_s": round(time.perf_counter() - started, 1), "timings": timings}


def _layouts_row(sizes: Sizes, quick: bool, runs_dir: str, small_run, cache_dir) -> Row:
    from ..analysis.layouts import DEFAULT_METHOD, layout_benchmark

    # Quick mode lays out the tiny diagnostics run; the full run trains (once, then reuses) a
    # depth-6 run with a 5,000-image probe set.
    (r,) = layout_benchmark(depth=sizes.layout_depth, points=sizes.layout_points, methods=(DEFAULT_METHOD,),
                            run=small_run if quick else None, runs_dir=runs_dir, cache_dir=cache_dir)
    r = {k: v for k, v in r.items() if isinstance(v, (int, float, str))}
    return Row(
        "layouts", f"(d) per-layer layouts ({r['layouts']} layers x {r['points']:,} points, `{r['method']}` UMAP)",
        f"{r['seconds']:.1f} s ({r['cpu_seconds']:.1f} s CPU), trustworthiness {r['trustworthiness']:.3f}",
        "", "", "", None, r)


def to_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']} ({m['machine']}), {m['usable_cores']} of {m['logical_cores']} logical cores, "
        f"{m['memory_gib']} GiB; torch {m['torch']} ({m['threads']} threads); device: {m['device']}"
        + (" -- QUICK MODE: toy sizes, not a measurement" if result["quick"] else ""),
        "",
        "| measurement | workbench | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        cells = [r["measurement"], r["workbench"], r["baseline"], r["ratio"], r["target"].replace("<=", "≤")
                 .replace(">=", "≥"), met]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Measured in {result['wall_s']:.0f} s by `python -m workbench bench"
                 + (" --quick" if result["quick"] else "") + "`.")
    return "\n".join(lines)


def main(quick: bool = False, skip_layouts: bool = False, out: str | None = None, runs_dir: str = "runs/bench",
         data_dir: str | Path | None = "data") -> int:
    from ..atomic import atomic_write_text

    result = run_bench(quick=quick, skip_layouts=skip_layouts, runs_dir=runs_dir, cache_dir=data_dir)
    table = to_markdown(result)
    print(table)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".json":
            atomic_write_text(path, json.dumps({**result, "markdown": table}, indent=2, default=str) + "\n")
        else:
            atomic_write_text(path, table + "\n")
    return 0
