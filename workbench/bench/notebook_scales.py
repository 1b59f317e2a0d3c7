"""Every run the notebooks train at their GPU scales, and a synthetic CIFAR-10 to start them on.

The notebooks' scales live in :data:`workbench.analysis.notebook.SCALES` and are read with
:func:`~workbench.analysis.notebook.notebook_settings`, as the notebooks read them; notebook 05 sets
its GPU sizes in its own cell (:data:`EXPLORER_GPU`). What this module adds is each notebook's
runs: the preset and overrides of every run, built from the scale's knobs as the notebook's
``VARIANTS`` builds them with its other parameters at their defaults. ``tests/test_gpucheck.py``
executes the notebooks' set-up cells at every GPU scale and checks that the configs built here are
the notebooks' own.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..analysis.experiments import Variant

#: Notebook 05's run when it has none to open, at ``SCALE = "gpu"`` (its parameters and GPU cell);
#: it reads CIFAR-10 from ``data.root``'s default search, which the check points at its copy.
EXPLORER_GPU = {"data.name": "cifar10", "data.shapes.num_images": 6000, "data.batch_size": 256,
                "data.probe_size": 5000, "data.download": True, "model.patch_size": 4, "model.width": 192,
                "model.depth": 6, "model.heads": 6, "trainer.max_epochs": 100}


def notebook_variants(notebook: str, knobs: Mapping[str, Any]) -> dict[str, Variant]:
    """The runs notebook ``notebook`` trains, ``label -> Variant(preset, overrides)``, given its
    scale's knobs (every other parameter at the notebook's default)."""
    if notebook in ("00_quickstart", "05_layer_explorer"):
        return {"quickstart" if notebook == "00_quickstart" else "explorer": Variant("supervised")}
    if notebook == "01_stepwise_construction":
        return {"end-to-end": Variant("supervised"), "deep-supervision": Variant("stepwise-deepsup"),
                "pixel-ladder-fine-to-coarse": Variant("stepwise-pixel-ladder",
                                                       {"objectives.ladder.params.direction": "fine_to_coarse"}),
                "pixel-ladder-coarse-to-fine": Variant("stepwise-pixel-ladder",
                                                       {"objectives.ladder.params.direction": "coarse_to_fine"}),
                "local-greedy": Variant("local-greedy")}
    if notebook == "02_latent_losses_and_collapse":
        dim = knobs["dim"]
        return {"toy": Variant("toy-collapse", {"objectives.toy.params.dim": dim}), "dino": Variant("dino"),
                "lejepa": Variant("lejepa", {"objectives.lejepa.params.dim": dim}),
                "vicreg": Variant("vicreg", {"objectives.vicreg.params.dim": dim})}
    if notebook == "03_reconstruction_as_anchor":
        norm_pix = knobs["norm_pix"]
        return {"latent-only": Variant("lejepa"),
                "latent+mae": Variant("lejepa", {"objectives.mae.kind": "mae", "objectives.mae.weight": 1.0,
                                                 "objectives.mae.params.norm_pix": norm_pix}),
                "coherent": Variant("coherent", {"objectives.ladder.params.norm_pix": norm_pix})}
    if notebook == "04_dense_curricula":
        ratio = "objectives.mae.params.mask_ratio"
        return {"fixed": Variant("mae", {ratio: 0.75}),
                "scheduled": Variant("mae", {ratio: {"schedule": "linear", "start": 0.25, "end": 0.75, "until": 0.7}}),
                "adaptive": Variant("mae", {ratio: {"schedule": "adaptive", "start": 0.25, "end": 0.9, "step": 0.05,
                                                    "target": knobs["target"], "metric": "mae/mse",
                                                    "every": knobs["every"]}})}
    if notebook == "06_compare_runs":
        return {p: Variant(p) for p in ("supervised", "stepwise-deepsup", "lejepa")}
    raise KeyError(f"no runs known for notebook {notebook!r}")


@dataclass(frozen=True)
class NotebookRun:
    """One run of one notebook at one scale: its preset and every override (the notebook's, then the
    caller's ``extra``)."""

    notebook: str
    scale: str
    label: str
    preset: str
    overrides: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.notebook} [{self.scale}] / {self.label}"


def notebook_runs(data_root: str | Path, extra: Mapping[str, Any] | None = None) -> list[NotebookRun]:
    """Every run of every notebook at every GPU scale (scales named ``gpu...``), notebook by
    notebook, with CIFAR-10 read from ``data_root`` and ``extra`` applied last (run length, sizes).
    The seed is 0 (notebook 06's sweep sets it per run; its first seed is 0)."""
    from ..analysis.notebook import SCALES, notebook_settings

    runs = []
    for notebook in sorted({*SCALES, "05_layer_explorer"}):
        scales = [s for s in SCALES.get(notebook, {"gpu": None}) if s.startswith("gpu")]
        for scale in scales:
            if notebook == "05_layer_explorer":
                common, knobs = {**EXPLORER_GPU, "seed": 0, "trainer.enable_progress_bar": False}, {}
            else:
                settings = notebook_settings(notebook, scale, seed=0, interactive=False, data_dir=data_root)
                common, knobs = dict(settings.overrides), settings.knobs
            if notebook == "02_latent_losses_and_collapse":  # the monitors drawn as curves
                common["diagnostics.monitor_every_n_steps"] = max(1, common["trainer.log_every_n_steps"])
            if common.get("data.name") == "cifar10":
                common["data.root"] = str(Path(data_root).resolve())
            for label, variant in notebook_variants(notebook, knobs).items():
                runs.append(NotebookRun(notebook, scale, label, variant.preset,
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
