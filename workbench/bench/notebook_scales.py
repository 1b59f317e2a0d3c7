"""The notebooks' ``SCALE = "gpu"`` settings in one table, and a synthetic CIFAR-10 to start them on.

Each notebook (``notebooks/*.py``) keeps its own ``SCALES`` dict in its parameters cell and builds its
runs from it. :data:`GPU_NOTEBOOKS` copies what every notebook trains at ``SCALE = "gpu"`` with its
other parameters at their defaults: the settings shared by its runs and each run's preset and own
overrides. ``tests/test_gpucheck.py`` executes the notebooks' set-up cells with ``SCALE = "gpu"`` and
checks that the configs built from this table are theirs, so the table cannot drift from the
notebooks unnoticed.

``DATA_DIR`` in a setting stands for the notebook's ``DATA_DIR`` parameter (where the CIFAR-10
batches live); :func:`notebook_runs` replaces it.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.experiments import Variant

#: Stands for the notebook's ``DATA_DIR`` in :data:`GPU_NOTEBOOKS`.
DATA_DIR = "<DATA_DIR>"


@dataclass(frozen=True)
class NotebookScale:
    """What one notebook trains at ``SCALE = "gpu"``: ``common`` overrides for every run, and its runs
    as ``label -> Variant(preset, overrides)`` (the variant's overrides applied after ``common``)."""

    common: dict[str, Any]
    variants: dict[str, Variant] = field(default_factory=dict)


_CIFAR_VIT = {"data.name": "cifar10", "data.root": DATA_DIR, "model.patch_size": 4, "model.width": 192,
              "model.depth": 9, "model.heads": 6, "data.batch_size": 256}

GPU_NOTEBOOKS: dict[str, NotebookScale] = {
    "00_quickstart": NotebookScale(
        {**_CIFAR_VIT, "optim.lr": 1e-3, "trainer.max_epochs": 50},
        {"quickstart": Variant("supervised")}),
    "01_stepwise_construction": NotebookScale(
        {**_CIFAR_VIT, "optim.lr": 1e-3, "trainer.max_epochs": 30},
        {"end-to-end": Variant("supervised"),
         "deep-supervision": Variant("stepwise-deepsup"),
         "pixel-ladder-fine-to-coarse": Variant("stepwise-pixel-ladder",
                                                {"objectives.ladder.params.direction": "fine_to_coarse"}),
         "pixel-ladder-coarse-to-fine": Variant("stepwise-pixel-ladder",
                                                {"objectives.ladder.params.direction": "coarse_to_fine"}),
         "local-greedy": Variant("local-greedy")}),
    "02_latent_losses_and_collapse": NotebookScale(
        {"data.name": "cifar10", "data.root": DATA_DIR, "data.batch_size": 256, "model.patch_size": 4,
         "model.width": 192, "model.depth": 6, "model.heads": 6, "trainer.max_steps": 5000,
         "trainer.log_every_n_steps": 50, "optim.lr": 1e-3, "views.local_crops": 4,
         "diagnostics.monitor_every_n_steps": 50},
        {"toy": Variant("toy-collapse", {"objectives.toy.params.dim": 128}),
         "dino": Variant("dino"),
         "lejepa": Variant("lejepa", {"objectives.lejepa.params.dim": 128}),
         "vicreg": Variant("vicreg", {"objectives.vicreg.params.dim": 128})}),
    "03_reconstruction_as_anchor": NotebookScale(
        {**_CIFAR_VIT, "optim.lr": 1e-3, "trainer.max_epochs": 100, "views.local_crops": 4},
        {"latent-only": Variant("lejepa"),
         "latent+mae": Variant("lejepa", {"objectives.mae.kind": "mae", "objectives.mae.weight": 1.0,
                                          "objectives.mae.params.norm_pix": True}),
         "coherent": Variant("coherent", {"objectives.ladder.params.norm_pix": True})}),
    "04_dense_curricula": NotebookScale(
        {**_CIFAR_VIT, "optim.lr": 1.5e-3, "trainer.max_epochs": 100, "trainer.log_every_n_steps": 20,
         "objectives.mae.params.norm_pix": True},
        {"fixed": Variant("mae", {"objectives.mae.params.mask_ratio": 0.75}),
         "scheduled": Variant("mae", {"objectives.mae.params.mask_ratio": {
             "schedule": "linear", "start": 0.25, "end": 0.75, "until": 0.7}}),
         "adaptive": Variant("mae", {"objectives.mae.params.mask_ratio": {
             "schedule": "adaptive", "start": 0.25, "end": 0.9, "step": 0.05, "target": 0.5, "metric": "mae/mse",
             "every": 100}})}),
    "05_layer_explorer": NotebookScale(
        {"data.name": "cifar10", "data.shapes.num_images": 6000, "data.batch_size": 256, "data.probe_size": 5000,
         "data.download": True, "model.patch_size": 4, "model.width": 192, "model.depth": 6, "model.heads": 6,
         "trainer.max_epochs": 100},
        {"explorer": Variant("supervised")}),
    "06_compare_runs": NotebookScale(
        {"data.name": "cifar10", "data.root": DATA_DIR, "model.patch_size": 4, "model.width": 192,
         "model.depth": 9, "model.heads": 6, "data.batch_size": 256, "optim.lr": 1e-3, "trainer.max_epochs": 50,
         "views.local_crops": 4, "diagnostics.monitor_every_n_steps": 50},
        {"supervised": Variant("supervised"), "stepwise-deepsup": Variant("stepwise-deepsup"),
         "lejepa": Variant("lejepa")}),
}


@dataclass(frozen=True)
class NotebookRun:
    """One run of one notebook: its preset and every override (the notebook's, then ``extra``)."""

    notebook: str
    label: str
    preset: str
    overrides: dict[str, Any]


def notebook_runs(data_root: str | Path, extra: dict[str, Any] | None = None) -> list[NotebookRun]:
    """Every run of :data:`GPU_NOTEBOOKS`, notebook by notebook in table order, with ``DATA_DIR``
    replaced by ``data_root`` and ``extra`` applied last (run length, sizes). Notebook 05 reads
    CIFAR-10 from its default place, so ``data.root`` is set for it too."""
    runs = []
    for notebook, scale in GPU_NOTEBOOKS.items():
        common = {k: (str(data_root) if v == DATA_DIR else v) for k, v in scale.common.items()}
        common["data.root"] = str(data_root)
        for label, variant in scale.variants.items():
            runs.append(NotebookRun(notebook, label, variant.preset,
                                    {**common, **dict(variant.overrides), **dict(extra or {})}))
    return runs


def cifar10_present(root: str | Path) -> Path | None:
    """The CIFAR-10 batch directory under ``root`` (``root/cifar-10-batches-py`` or ``root`` itself)
    when its meta file is there, else None."""
    for directory in (Path(root) / "cifar-10-batches-py", Path(root)):
        if (directory / "batches.meta").is_file():
            return directory
    return None


def write_synthetic_cifar10(root: str | Path, per_batch: int = 10000, seed: int = 0) -> Path:
    """Random images in CIFAR-10's official python layout under ``root/cifar-10-batches-py``: five
    training batches and a test batch of ``per_batch`` images each (uniform uint8 pixels, labels
    ``i % 10``), and ``batches.meta`` with the ten class names. Returns ``root``.

    Only the shapes and the file format are CIFAR-10's: a run on it checks that training starts,
    not what it learns.
    """
    if per_batch < 10:
        raise ValueError(f"per_batch={per_batch} is invalid: use at least 10 (one image per class)")
    directory = Path(root) / "cifar-10-batches-py"
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
                 b"labels": [i % 10 for i in range(per_batch)]}
        with open(directory / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(directory / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in names]}, f, protocol=2)
    return Path(root)
