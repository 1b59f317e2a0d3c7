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


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}")


def main(argv: list[str] | None = None) -> int:
    rows = []
    s = bench_shapes()
    rows.append(("shapes generation, 32 x 32", f"{s['images_per_s']:,.0f} images/s",
                 f"{s['images']:,} images in {s['seconds']:.2f} s, best of 3"))
    print(f"Machine: {machine()}\n")
    print("| benchmark | result | detail |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0
