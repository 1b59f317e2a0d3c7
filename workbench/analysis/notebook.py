"""The settings a notebook's runs share: its scales, the sizes a reader may change, and extra overrides.

Every notebook has a CPU scale (``shapes`` on two CPU cores, minutes) and GPU scales. The scales
live here, in one table, so that a notebook, its test and the GPU check read the same values:

    settings = notebook_settings("01_stepwise_construction", SCALE, seed=SEED, interactive=INTERACTIVE,
                                 data_dir=DATA_DIR, sizes={"trainer.max_epochs": MAX_EPOCHS}, overrides=OVERRIDES)
    settings.overrides   # the dotted config overrides every run of the notebook shares
    settings.knobs       # the notebook's own values at this scale (e.g. an embedding width)

The ``gpu`` scale of the notebooks that read ground-truth factors (01, 03, 04) is ``shapes`` at
64 x 64 with 50,000 images, so the factor probes keep working on a GPU; ``gpu-cifar10`` is the same
model on CIFAR-10, which has a label but no factors (put the official python batches,
``cifar-10-batches-py/``, under the notebook's ``DATA_DIR``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..config import parse_override
from ..data.shapes import GPU_SCALE_OVERRIDES
from ..errors import check_one_of
from ..presets import SHAPES_VIEWS

CIFAR10 = "<DATA_DIR>"  # stands for the notebook's DATA_DIR in ``data.root``

_VIT_TINY = {"model.patch_size": 4, "model.width": 192, "model.depth": 9, "model.heads": 6, "data.batch_size": 256}
_SHAPES_64 = {"data.name": "shapes", **dict(parse_override(o) for o in GPU_SCALE_OVERRIDES),  # 64 px, 50,000 images
              "model.patch_size": 8, "model.width": 192, "model.depth": 9, "model.heads": 6, "data.batch_size": 256}
_CIFAR = {"data.name": "cifar10", "data.root": CIFAR10}


@dataclass(frozen=True)
class Scale:
    """One scale of one notebook: config overrides shared by its runs, and the notebook's own knobs."""

    overrides: Mapping[str, Any]
    knobs: Mapping[str, Any] = field(default_factory=dict)


SCALES: dict[str, dict[str, Scale]] = {
    "00_quickstart": {
        "cpu": Scale({"data.name": "shapes", "data.shapes.num_images": 12000, "model.patch_size": 8,
                      "model.width": 96, "model.depth": 4, "model.heads": 4, "data.batch_size": 128,
                      "optim.lr": 2e-3, "trainer.max_epochs": 8}),
        "gpu": Scale({**_CIFAR, **_VIT_TINY, "optim.lr": 1e-3, "trainer.max_epochs": 50}),
    },
    "01_stepwise_construction": {
        # 8,000 images: five recipes x three seeds train in under 8 minutes on two cores
        "cpu": Scale({"data.name": "shapes", "data.shapes.num_images": 8000, "model.patch_size": 8,
                      "model.width": 64, "model.depth": 6, "model.heads": 4, "data.batch_size": 128,
                      "optim.lr": 2e-3, "trainer.max_epochs": 6}),
        "gpu": Scale({**_SHAPES_64, "optim.lr": 1e-3, "trainer.max_epochs": 30}),
        "gpu-cifar10": Scale({**_CIFAR, **_VIT_TINY, "optim.lr": 1e-3, "trainer.max_epochs": 30}),
    },
    "02_latent_losses_and_collapse": {
        # colour jitter and grayscale off: on `shapes` colour carries much of the images' variance,
        # and a short run asked to ignore it settles at a lower rank (tests/test_collapse_phenomenon.py)
        "cpu": Scale({"data.name": "shapes", "data.shapes.num_images": 3000, "data.batch_size": 128,
                      "model.patch_size": 8, "model.width": 64, "model.depth": 3, "model.heads": 4,
                      "trainer.max_steps": 150, "trainer.log_every_n_steps": 10, "optim.lr": 5e-4,
                      "views.local_crops": 2, "views.jitter": 0.0, "views.grayscale": 0.0}, {"dim": 64}),
        "gpu": Scale({**_CIFAR, **_VIT_TINY, "model.depth": 6, "trainer.max_steps": 5000,
                      "trainer.log_every_n_steps": 50, "optim.lr": 1e-3, "views.local_crops": 4}, {"dim": 128}),
    },
    "03_reconstruction_as_anchor": {
        # the views under which a latent recipe learns shape on `shapes`, colour a nuisance (SHAPES_VIEWS)
        # 10,000 images: three recipes x three seeds train in under 8 minutes on two cores
        "cpu": Scale({"data.name": "shapes", "data.shapes.num_images": 10000, "model.patch_size": 8,
                      "model.width": 96, "model.depth": 4, "model.heads": 4, "data.batch_size": 128,
                      "optim.lr": 2e-3, "trainer.max_epochs": 3, **SHAPES_VIEWS}, {"norm_pix": False}),
        "gpu": Scale({**_SHAPES_64, "optim.lr": 1e-3, "trainer.max_epochs": 100, **SHAPES_VIEWS},
                     {"norm_pix": True}),
        "gpu-cifar10": Scale({**_CIFAR, **_VIT_TINY, "optim.lr": 1e-3, "trainer.max_epochs": 100,
                              "views.local_crops": 4}, {"norm_pix": True}),
    },
    "04_dense_curricula": {
        # 8,000 images: three curricula x three seeds train in under 8 minutes on two cores
        "cpu": Scale({"data.name": "shapes", "data.shapes.num_images": 8000, "model.patch_size": 4,
                      "model.width": 96, "model.depth": 4, "model.heads": 4, "data.batch_size": 128,
                      "optim.lr": 2e-3, "trainer.max_epochs": 4, "trainer.log_every_n_steps": 10,
                      "objectives.mae.params.norm_pix": False}, {"target": 0.9, "every": 20}),
        "gpu": Scale({**_SHAPES_64, "optim.lr": 1.5e-3, "trainer.max_epochs": 100, "trainer.log_every_n_steps": 20,
                      "objectives.mae.params.norm_pix": True}, {"target": 0.5, "every": 100}),
        "gpu-cifar10": Scale({**_CIFAR, **_VIT_TINY, "optim.lr": 1.5e-3, "trainer.max_epochs": 100,
                              "trainer.log_every_n_steps": 20, "objectives.mae.params.norm_pix": True},
                             {"target": 0.5, "every": 100}),
    },
    "06_compare_runs": {
        "cpu": Scale({"data.name": "shapes", "data.shapes.num_images": 6000, "model.patch_size": 8,
                      "model.width": 64, "model.depth": 4, "model.heads": 4, "data.batch_size": 128,
                      "optim.lr": 2e-3, "trainer.max_epochs": 3, "views.local_crops": 2,
                      "diagnostics.monitor_every_n_steps": 10}),
        "gpu": Scale({**_CIFAR, **_VIT_TINY, "optim.lr": 1e-3, "trainer.max_epochs": 50, "views.local_crops": 4,
                      "diagnostics.monitor_every_n_steps": 50}),
    },
}


@dataclass(frozen=True)
class Settings:
    """What :func:`notebook_settings` returns: the shared overrides and the notebook's knobs."""

    overrides: dict[str, Any]
    knobs: dict[str, Any]


def notebook_settings(
    notebook: str,
    scale: str,
    *,
    seed: int | None = 0,
    interactive: bool | None = False,
    data_dir: str | Path = "../data",
    sizes: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """The settings every run of ``notebook`` at ``scale`` shares.

    In order: the scale's overrides (``data.root`` of a CIFAR-10 scale becomes ``data_dir``,
    resolved to an absolute path), then each non-zero entry of ``sizes`` (a notebook's
    ``MAX_EPOCHS = 0`` means "the scale's default"; a size that names a knob replaces the knob),
    then ``seed``, the progress bar (on when ``interactive``), then ``overrides`` (applied last).
    ``seed=None`` and ``interactive=None`` leave those fields out (a sweep sets each run's seed).
    """
    check_one_of("notebook", notebook, SCALES)
    check_one_of("SCALE", scale, SCALES[notebook], f"the scales of {notebook}")
    chosen = SCALES[notebook][scale]
    common = {key: (str(Path(data_dir).resolve()) if value == CIFAR10 else value)
              for key, value in chosen.overrides.items()}
    knobs = dict(chosen.knobs)
    for key, value in (sizes or {}).items():
        if value:
            (knobs if key in knobs else common)[key] = value
    if seed is not None:
        common["seed"] = seed
    if interactive is not None:
        common["trainer.enable_progress_bar"] = bool(interactive)
    common.update(overrides or {})
    return Settings(common, knobs)
