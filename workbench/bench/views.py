"""DINO multi-crop throughput: batched on the device against torchvision's per-sample transforms.

Both sides make the views the ``dino`` preset trains on, from the same uint8 images, with the same
parameters (``config.views``): ``global_crops`` random resized crops at the image size (scale
``global_scale``, aspect ``global_ratio``) and ``local_crops`` at the local size (``local_scale``,
``local_ratio``), each followed by a horizontal flip, colour jitter at the ``views`` strengths
applied with probability ``jitter``, grayscale, Gaussian blur (sigma ``blur_sigma``, kernel about
10% of the side) and solarisation, with each crop's probabilities under ``views.recipe``
(:func:`workbench.views.config_crop_specs`).

* **batched**: :func:`workbench.views.multi_crop` on a whole batch on the training device (what
  the module runs every step).
* **per-sample**: ``torchvision.transforms.v2`` pipelines applied to one image at a time in a
  ``DataLoader`` with one worker per CPU core -- the usual way to feed a GPU.

Throughput counts source images per second (each yields every view). The loader's first batch
(worker start-up) and the batched side's first call are not timed.
"""

from __future__ import annotations

import os
import statistics
import time

import torch


def batched_throughput(images: torch.Tensor, views_config, patch_size: int, batch_size: int, batches: int,
                       device: torch.device) -> float:
    """Images per second of :func:`multi_crop` on ``batch_size``-image batches on ``device``."""
    from ..randomness import make_generator
    from ..views import config_multi_crop

    images = images.to(device)
    generator = make_generator(0, device)

    def run(start: int) -> None:
        config_multi_crop(images[start:start + batch_size].float() / 255.0, generator, views_config, patch_size)

    run(0)  # warm-up
    times = []
    count = max(1, len(images) // batch_size)
    for i in range(batches):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run((i % count) * batch_size)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return batch_size / statistics.median(times)


class PerSampleViews(torch.utils.data.Dataset):
    """Every view of one image from ``torchvision.transforms.v2`` pipelines (a picklable dataset,
    so DataLoader workers can run it)."""

    def __init__(self, images: torch.Tensor, views_config, patch_size: int):
        from torchvision.transforms import v2

        from ..views import config_crop_specs, config_local_size, default_kernel_size

        self.images = images
        v = views_config
        global_specs, local_spec = config_crop_specs(views_config)
        side = images.shape[-1]

        def pipeline(size: int, scale, ratio, spec) -> v2.Compose:
            return v2.Compose([
                v2.ToDtype(torch.float32, scale=True),
                v2.RandomResizedCrop(size, scale=tuple(scale), ratio=tuple(ratio)),
                v2.RandomHorizontalFlip(spec.flip),
                v2.RandomApply([v2.ColorJitter(spec.brightness, spec.contrast, spec.saturation, spec.hue)], p=spec.jitter),
                v2.RandomGrayscale(spec.grayscale),
                v2.RandomApply([v2.GaussianBlur(default_kernel_size(size, size), sigma=tuple(spec.blur_sigma))],
                               p=spec.blur),
                v2.RandomSolarize(threshold=0.5, p=spec.solarize),
            ])

        small = config_local_size(v, side, patch_size)
        self.transforms = ([pipeline(side, v.global_scale, v.global_ratio, global_specs[i % len(global_specs)])
                            for i in range(v.global_crops)]
                           + [pipeline(small, v.local_scale, v.local_ratio, local_spec)] * v.local_crops)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        image = self.images[index]
        return tuple(t(image) for t in self.transforms)


def per_sample_throughput(images: torch.Tensor, views_config, patch_size: int, batch_size: int, batches: int,
                          workers: int | None = None) -> float:
    """Images per second of torchvision v2 per-sample pipelines in a DataLoader (``workers``
    processes, default one per core)."""
    workers = (os.cpu_count() or 1) if workers is None else workers
    needed = batch_size * (batches + 1)
    reps = -(-needed // len(images))
    dataset = PerSampleViews(images.cpu().repeat(reps, 1, 1, 1)[:needed], views_config, patch_size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=False)
    iterator = iter(loader)
    next(iterator)  # worker start-up
    start = time.perf_counter()
    seen = 0
    for views in iterator:
        seen += len(views[0])
    return seen / (time.perf_counter() - start)


def compare_views(images: torch.Tensor, views_config, patch_size: int, batch_size: int = 128, batches: int = 20,
                  device: torch.device | str | None = None, workers: int | None = None) -> dict[str, float]:
    """Both throughputs (images/s) and their ratio (batched / per-sample)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    workers = (os.cpu_count() or 1) if workers is None else workers
    per_sample = per_sample_throughput(images, views_config, patch_size, batch_size, batches, workers)
    batched = batched_throughput(images, views_config, patch_size, batch_size, max(batches, 10), device)
    return {"batched": batched, "per_sample": per_sample, "ratio": batched / per_sample, "workers": workers,
            "device": str(device), "batch_size": batch_size}
