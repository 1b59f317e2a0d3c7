"""``python -m workbench bench``: measurements on the current machine, printed as a markdown table.

Every figure is measured in the same process, after a warm-up, so ratios between rows are
meaningful; absolute numbers only describe this machine.
"""

from __future__ import annotations

import os
import platform
import time
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
    from .data.shapes import ShapesParams, generate_shapes

    params = ShapesParams(num_images=num_images, image_size=image_size, seed=0)
    generate_shapes(ShapesParams(num_images=512, image_size=image_size, seed=1))  # warm-up
    seconds = _best_of(lambda: generate_shapes(params))
    return {"images": num_images, "seconds": seconds, "images_per_s": num_images / seconds}


# The quickstart notebook's default CPU run (notebooks/00_quickstart.py, parameters cell).
QUICKSTART = [
    "data.shapes.num_images=12000", "data.batch_size=128", "model.patch_size=8", "model.width=96",
    "model.depth=4", "model.heads=4", "optim.lr=2e-3", "trainer.max_epochs=8",
]


def bench_diagnostics(runs_dir: str = "runs/bench") -> dict[str, float]:
    """Wall time of the quickstart run with and without the diagnostics callback (default settings)."""
    from .train import fit

    walls = {}
    for enabled in (False, True):
        run = fit(preset="supervised", overrides=QUICKSTART + [f"diagnostics.enabled={str(enabled).lower()}",
                                                                 f"runs_dir={runs_dir}"])
        walls[enabled] = run.summary["wall_s"]
        seconds = run.summary["diagnostics_s"]
    return {"without": walls[False], "with": walls[True], "diagnostics_s": seconds,
            "overhead": walls[True] / walls[False] - 1.0, "share": seconds / (walls[True] - seconds)}


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}")


def main(argv: list[str] | None = None) -> int:
    rows = []
    s = bench_shapes()
    rows.append(("shapes generation, 32 x 32", f"{s['images_per_s']:,.0f} images/s",
                 f"{s['images']:,} images in {s['seconds']:.2f} s, best of 3"))
    d = bench_diagnostics()
    rows.append(("diagnostics callback, quickstart CPU run", f"{100 * d['share']:.1f}% of training time",
                 f"{d['diagnostics_s']:.1f} s in the callback; run wall {d['without']:.1f} s without, "
                 f"{d['with']:.1f} s with ({100 * d['overhead']:+.1f}%)"))
    print(f"Machine: {machine()}\n")
    print("| benchmark | result | detail |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0
