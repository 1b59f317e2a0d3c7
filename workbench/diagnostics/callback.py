"""Per-layer diagnostics during training: a Lightning callback writing ``diagnostics.csv`` and
``embeddings/epoch=NNN.npz`` into the run directory.

Before training, every ``every_n_epochs`` epochs and after the last one, the callback embeds the
fixed probe set (held-out images) at every layer, pooled two ways (CLS and mean of patch tokens),
and computes every diagnostic per (layer, pool). The same functions work on any tensors outside
training: :func:`layer_embeddings` and :func:`layer_metrics` are what a notebook calls.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback

from ..atomic import atomic_open
from ..config import DiagnosticsConfig
from ..data.base import Factor, ImageSet
from .geometry import alignment, invariance_score, lidar, residual_ratio, token_cosine, uniformity
from .probes import coherence, factor_decodability, knn_accuracy, linear_probe, region_context
from .similarity import cka_matrix
from .spectral import (
    alpha_req, covariance_spectrum, effective_rank, participation_ratio, rankme, sigreg_statistic,
    std_of_normalized,
)

COLUMNS = ["epoch", "layer", "pool", "metric", "value"]


@torch.no_grad()
def layer_embeddings(
    module: L.LightningModule, images: torch.Tensor, pools: Sequence[str] = ("cls", "mean"), batch_size: int = 256,
    token_images: int = 0,
) -> tuple[dict[tuple[int, str], torch.Tensor], dict[int, torch.Tensor]]:
    """Pooled embeddings of uint8 ``images`` at every layer (0..depth; layer 0 only mean-pooled), and
    the patch tokens of the first ``token_images`` images per layer (for the token metrics). Runs in
    eval mode."""
    was_training = module.training
    module.eval()
    pooled: dict[tuple[int, str], list[torch.Tensor]] = {}
    tokens: dict[int, list[torch.Tensor]] = {}
    for start in range(0, images.shape[0], batch_size):
        out = module(images[start : start + batch_size])
        for layer in range(out.depth + 1):
            for pool in pools:
                if layer == 0 and pool == "cls":
                    continue  # layer 0's CLS token is the learned constant: no image information
                pooled.setdefault((layer, pool), []).append(out.pooled(layer, pool).float())
            if start < token_images:
                tokens.setdefault(layer, []).append(out.patches(layer)[: token_images - start].float())
    module.train(was_training)
    return {k: torch.cat(v) for k, v in pooled.items()}, {k: torch.cat(v) for k, v in tokens.items()}


def layer_metrics(
    z: torch.Tensor,
    labels: torch.Tensor | None = None,
    factors: torch.Tensor | None = None,
    specs: Sequence[Factor] = (),
    coherence_pairs: Sequence[str] = (),
    knn_k: int = 20,
    probe_steps: int = 50,
    seed: int = 0,
) -> dict[str, float]:
    """Every diagnostic of one N x D embedding: collapse, semantics, factors, coherence."""
    g = torch.Generator(device=z.device).manual_seed(seed)
    alpha = alpha_req(z) if z.shape[1] >= 6 else {"alpha": float("nan"), "r2": float("nan")}
    out = {
        "rankme": rankme(z), "effective_rank": effective_rank(z), "participation_ratio": participation_ratio(z),
        "alpha": alpha["alpha"], "alpha_r2": alpha["r2"], "std_l2": std_of_normalized(z),
        "uniformity": uniformity(z, generator=g), "sigreg": sigreg_statistic(z, generator=g),
    }
    out = {k: float(v) for k, v in out.items()}
    if labels is not None:
        out["linear_acc"] = linear_probe(z, labels, seed=seed, steps=probe_steps)["accuracy"]
        out["knn_acc"] = knn_accuracy(z, labels, k=knn_k, seed=seed)
    if factors is not None and specs:
        # Factor and coherence probes use the closed-form ridge classifier: converged at a fixed cost
        # (tens of probes per layer); the label probe is the usual logistic regression.
        for name, result in factor_decodability(z, factors, specs, seed=seed, solver="ridge").items():
            out[f"factor/{name}"] = float(result["score"])
        names = [f.name for f in specs]
        for pair in coherence_pairs:
            target, context = pair.split(":")
            if target not in names or (context not in names and context != "region"):
                continue
            if context == "region":
                if "pos_x" not in names or "pos_y" not in names:
                    continue
                ctx = region_context(factors[:, names.index("pos_x")], factors[:, names.index("pos_y")])
            else:
                ctx = factors[:, names.index(context)].long()
            kind = specs[names.index(target)].kind
            result = coherence(z, factors[:, names.index(target)], ctx, kind=kind, seed=seed, solver="ridge")
            out[f"coherence/{target}|{context}/cosine"] = float(result["cosine"])
            out[f"coherence/{target}|{context}/accuracy"] = float(result["accuracy"])
    return out


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append tidy rows to a csv by rewriting it atomically (never a half-written table)."""
    new = pd.DataFrame(rows, columns=COLUMNS)
    table = pd.concat([pd.read_csv(path), new], ignore_index=True) if path.is_file() else new
    with atomic_open(path, "w") as f:
        table.to_csv(f, index=False)


def keep_epochs_until(path: Path, epoch: int) -> None:
    """Drop the rows of a diagnostics.csv after ``epoch`` (a resumed run computes them again)."""
    if path.is_file():
        table = pd.read_csv(path)
        if (table["epoch"] > epoch).any():
            with atomic_open(path, "w") as f:
                table[table["epoch"] <= epoch].to_csv(f, index=False)


def save_probe(directory: Path, probe: ImageSet, classes: Sequence[str], specs: Sequence[Factor]) -> None:
    """The probe set itself, once per run: ``probe.npz`` (uint8 images, labels, factors; row i is
    embedding row i) and ``probe.json`` (class names and factor specifications), so figures can show
    a point's image and factors without rebuilding the dataset."""
    arrays = {"images": probe.images.cpu().numpy(), "ids": np.arange(len(probe))}
    if probe.labels is not None:
        arrays["labels"] = probe.labels.cpu().numpy()
    if probe.factors is not None:
        arrays["factors"] = probe.factors.cpu().numpy()
    with atomic_open(directory / "probe.npz", "wb") as f:
        np.savez_compressed(f, **arrays)
    meta = {"classes": list(classes), "factors": [
        {"name": f.name, "kind": f.kind, "level": f.level, "description": f.description,
         "values": list(f.values), "range": None if f.range is None else list(f.range)} for f in specs]}
    with atomic_open(directory / "probe.json", "w") as f:
        json.dump(meta, f, indent=1)


class DiagnosticsCallback(Callback):
    """Diagnostics of the probe set before training, every ``every_n_epochs`` and at the end.

    Every rank computes (the probe set is the same everywhere, so collective ops inside the metrics
    agree); only rank 0 writes. ``seconds`` accumulates the time spent, to report its cost.
    """

    def __init__(self, run_dir: str | Path, config: DiagnosticsConfig, seed: int = 0):
        self.run_dir = Path(run_dir)
        self.config = config
        self.seed = seed
        self.done: set[int] = set()
        self.seconds = 0.0

    def run(self, trainer: L.Trainer, module: L.LightningModule, epoch: int) -> None:
        if epoch in self.done:
            return
        self.done.add(epoch)
        start = time.perf_counter()
        probe: ImageSet = trainer.datamodule.splits["probe"]
        specs = trainer.datamodule.data.factors
        c = self.config
        pooled, tokens = layer_embeddings(module, probe.images, c.pools, token_images=c.token_images)
        views = self._two_views(module, probe.images)
        rows: list[dict[str, Any]] = []
        for (layer, pool), z in pooled.items():
            metrics = layer_metrics(z, probe.labels, probe.factors, specs, c.coherence, c.knn_k, c.probe_steps, self.seed)
            if views is not None:
                a, b = views[0][(layer, pool)], views[1][(layer, pool)]
                metrics["invariance"] = float(invariance_score(a, b))
                metrics["alignment"] = float(alignment(a, b))
                metrics["lidar"] = float(lidar(torch.stack([a, b], dim=1)))  # q = 2 augmentations
            rows += [{"epoch": epoch, "layer": layer, "pool": pool, "metric": k, "value": v} for k, v in metrics.items()]
        for layer, t in tokens.items():
            rows.append({"epoch": epoch, "layer": layer, "pool": "tokens", "metric": "token_cosine",
                         "value": float(token_cosine(t))})
            rows.append({"epoch": epoch, "layer": layer, "pool": "tokens", "metric": "residual_ratio",
                         "value": float(residual_ratio(t))})
        for pool in c.pools:
            layers = sorted(l for (l, p) in pooled if p == pool)
            cka = cka_matrix([pooled[(l, pool)] for l in layers])
            rows += [{"epoch": epoch, "layer": a, "pool": pool, "metric": f"cka/{b}", "value": float(cka[i, j])}
                     for i, a in enumerate(layers) for j, b in enumerate(layers)]
        if trainer.is_global_zero:
            append_rows(self.run_dir / "diagnostics.csv", rows)
            if c.save_embeddings:
                self._save_embeddings(epoch, pooled, probe)
                if not (self.run_dir / "embeddings" / "probe.npz").is_file():
                    save_probe(self.run_dir / "embeddings", probe, trainer.datamodule.data.classes, specs)
        self.seconds += time.perf_counter() - start

    @torch.no_grad()
    def _two_views(self, module: L.LightningModule, images: torch.Tensor, chunk: int = 1024):
        """Pooled embeddings of two augmented views of every probe image (fixed generator), made
        in chunks so that augmentation buffers stay bounded whatever the probe size."""
        if not hasattr(module, "make_views"):
            return None
        from ..views import AugmentSpec, multi_crop

        generator = torch.Generator(device=images.device).manual_seed(self.seed + 12345)
        v = module.config.views
        spec = AugmentSpec(flip=v.flip, jitter=v.jitter, grayscale=v.grayscale, blur=v.blur, solarize=v.solarize)
        parts: list[list[dict]] = [[], []]
        for start in range(0, images.shape[0], chunk):
            x = images[start : start + chunk].float() / 255.0
            for view in range(2):
                (crop,), _ = multi_crop(x, generator, global_crops=1, global_size=x.shape[-1],
                                        global_scale=tuple(v.global_scale), local_crops=0, global_specs=[spec])
                pooled, _ = layer_embeddings(module, (crop * 255).round().to(torch.uint8), self.config.pools)
                parts[view].append(pooled)
        return [{key: torch.cat([p[key] for p in view_parts]) for key in view_parts[0]} for view_parts in parts]

    def _save_embeddings(self, epoch: int, pooled: dict, probe: ImageSet) -> None:
        arrays: dict[str, np.ndarray] = {}
        for (layer, pool), z in pooled.items():
            arrays[f"l{layer}_{pool}"] = z.cpu().numpy().astype(np.float16)
            arrays[f"spectrum_l{layer}_{pool}"] = covariance_spectrum(z).cpu().numpy()
        if probe.labels is not None:
            arrays["labels"] = probe.labels.cpu().numpy()
        if probe.factors is not None:
            arrays["factors"] = probe.factors.cpu().numpy()
        arrays["ids"] = np.arange(len(probe))
        path = self.run_dir / "embeddings" / f"epoch={epoch:03d}.npz"
        with atomic_open(path, "wb") as f:
            np.savez_compressed(f, **arrays)

    # ---- when ---------------------------------------------------------------------------------

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Not again after a resume: Lightning restores the loops (global_step) only after this hook,
        # so a resumed run is recognised by the checkpoint it was started from.
        if trainer.ckpt_path is None and trainer.current_epoch == 0 and trainer.global_step == 0:
            self.run(trainer, pl_module, 0)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        n = self.config.every_n_epochs
        if n > 0 and (trainer.current_epoch + 1) % n == 0:
            self.run(trainer, pl_module, trainer.current_epoch + 1)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.run(trainer, pl_module, trainer.current_epoch)
