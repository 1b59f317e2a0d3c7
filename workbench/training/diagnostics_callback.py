"""Per-layer diagnostics during training: a Lightning callback writing ``diagnostics.csv`` and
``embeddings/epoch=NNN.npz`` into the run directory.

Before training, every ``every_n_epochs`` epochs and after the last one, the callback embeds the
fixed probe set (held-out images) at every layer, pooled two ways (CLS and mean of patch tokens),
and computes every diagnostic per (layer, pool). The same functions work on any tensors outside
training: :func:`layer_embeddings` and :func:`layer_metrics` are what a notebook calls.

Memory is bounded (see :class:`~workbench.config.DiagnosticsConfig` for the stated bound): the pass
keeps one float32 N x D matrix per (layer, pool), and the metrics whose cost grows faster than N
(kNN, uniformity, the augmented views) see a fixed subset of ``diagnostics.max_samples`` points.

Under DDP every rank embeds its share of the probe set (and of the augmented views); the
embeddings are gathered to rank 0 in probe order, and rank 0 alone computes the metrics and writes
``diagnostics.csv`` and ``embeddings/``. All ranks meet at a barrier at the end of the pass, so
none runs ahead into the next collective while rank 0 is still computing.
"""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path
from typing import IO, Any, Iterable, Sequence

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback

from ..atomic import atomic_open
from ..config import DiagnosticsConfig, ViewsConfig
from ..data.base import Factor, ImageSet
from ..diagnostics.geometry import alignment, invariance_score, lidar, residual_ratio, token_cosine, uniformity
from ..diagnostics.probes import coherence, factor_decodability, knn_accuracy, linear_probe, region_context
from ..diagnostics.similarity import cka_matrix
from ..diagnostics.spectral import (
    alpha_req,
    covariance_spectrum,
    effective_rank,
    participation_ratio,
    rankme,
    sigreg_statistic,
    std_of_normalized,
)
from ..distributed import barrier, gather_rows, local_only, rank, world_size
from ..runs import embedding_key

COLUMNS = ["epoch", "layer", "pool", "metric", "value"]


def subsample_indices(n: int, max_samples: int | None, seed: int = 0) -> torch.Tensor | None:
    """A fixed subset of ``range(n)`` of ``max_samples`` indices, ascending; ``None`` when all fit.

    ``None`` (use every row, in order) when ``max_samples`` is ``None`` or ``n <= max_samples``, so a
    capped metric gives exactly its uncapped value on small sets. Otherwise the first
    ``max_samples`` entries of a permutation from a CPU generator seeded with ``seed`` (the same
    subset at every call, every epoch and on every device), sorted to keep the original order.
    """
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples={max_samples} is invalid: use a positive integer or None")
    if max_samples is None or n <= max_samples:
        return None
    generator = torch.Generator().manual_seed(int(seed) + 1_000_003)  # not the probes' split stream
    return torch.randperm(n, generator=generator)[:max_samples].sort().values


@torch.no_grad()
def layer_embeddings(
    module: L.LightningModule, images: torch.Tensor, pools: Sequence[str] = ("cls", "mean"), batch_size: int = 256,
    token_images: int = 0,
) -> tuple[dict[tuple[int, str], torch.Tensor], dict[int, torch.Tensor]]:
    """Pooled embeddings of uint8 ``images`` at every layer (0..depth; layer 0 only mean-pooled), and
    the patch tokens of the first ``token_images`` images per layer (for the token metrics). Runs in
    eval mode.

    Each pooled embedding is copied batch by batch into one preallocated float32 ``N x D`` matrix.
    (A CLS token is a view into its batch's ``B x T x D`` tokens: kept as such, every batch's tokens
    of every layer would stay alive -- T times the memory of the embeddings.)
    """
    was_training = module.training
    module.eval()
    n = images.shape[0]
    pooled: dict[tuple[int, str], torch.Tensor] = {}
    tokens: dict[int, list[torch.Tensor]] = {}
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        out = module(images[start:stop])
        for layer in range(out.depth + 1):
            for pool in pools:
                if layer == 0 and pool == "cls":
                    continue  # layer 0's CLS token is the learned constant: no image information
                z = out.pooled(layer, pool)
                if (layer, pool) not in pooled:
                    pooled[(layer, pool)] = torch.empty(n, z.shape[1], dtype=torch.float32, device=z.device)
                pooled[(layer, pool)][start:stop] = z
            if start < token_images:
                tokens.setdefault(layer, []).append(out.patches(layer)[: token_images - start].float().clone())
    module.train(was_training)
    return pooled, {k: torch.cat(v) for k, v in tokens.items()}


def layer_metrics(
    z: torch.Tensor,
    labels: torch.Tensor | None = None,
    factors: torch.Tensor | None = None,
    specs: Sequence[Factor] = (),
    coherence_pairs: Sequence[str] = (),
    knn_k: int = 20,
    probe_steps: int = 50,
    seed: int = 0,
    max_samples: int | None = None,
) -> dict[str, float]:
    """Every diagnostic of one N x D embedding: collapse, semantics, factors, coherence.

    ``max_samples`` caps the points that kNN accuracy and uniformity see (their cost grows as
    N^2) to a fixed subset (:func:`subsample_indices` with ``seed``); ``None``: every point (and
    uniformity's own default cap). Every other metric uses all N points.
    """
    g = torch.Generator(device=z.device).manual_seed(seed)
    subset = subsample_indices(z.shape[0], max_samples, seed)
    zs = z if subset is None else z[subset.to(z.device)]
    # with the cap, uniformity sees exactly the subset (no second subsample inside)
    uniform = uniformity(zs, generator=g) if max_samples is None else \
        uniformity(zs, max_samples=max(zs.shape[0], 2), generator=g)
    alpha = alpha_req(z) if z.shape[1] >= 6 else {"alpha": float("nan"), "r2": float("nan")}
    out = {
        "rankme": rankme(z), "effective_rank": effective_rank(z), "participation_ratio": participation_ratio(z),
        "alpha": alpha["alpha"], "alpha_r2": alpha["r2"], "std_l2": std_of_normalized(z),
        "uniformity": uniform, "sigreg": sigreg_statistic(z, generator=g),
    }
    out = {k: float(v) for k, v in out.items()}
    if labels is not None:
        out["linear_acc"] = linear_probe(z, labels, seed=seed, steps=probe_steps)["accuracy"]
        ys = labels if subset is None else labels[subset.to(labels.device)]
        out["knn_acc"] = knn_accuracy(zs, ys, k=knn_k, seed=seed)
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
            for key in ("ceiling", "normalised", "floor"):
                out[f"coherence/{target}|{context}/{key}"] = float(result[key])
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


def write_npz(f: IO[bytes], arrays: Iterable[tuple[str, np.ndarray]]) -> None:
    """An ``.npz`` file (a zip of ``.npy`` members, deflate-compressed, what ``np.load`` reads)
    written one array at a time: ``arrays`` may be a generator, so only one array need exist at
    once (``np.savez_compressed`` takes them all together)."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name, array in arrays:
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def _gather_trim(local: dict, total: int) -> dict | None:
    """Rank 0: every rank's equally long rows of each entry, in rank order, cut to ``total`` rows.
    Other ranks: ``None``. A single process: ``local`` itself (cut to ``total``)."""
    if world_size() == 1:
        return {key: z[:total] for key, z in local.items()}
    gathered = {key: gather_rows(z) for key, z in local.items()}  # the same keys, in the same order, everywhere
    return {key: z[:total] for key, z in gathered.items()} if rank() == 0 else None


class DiagnosticsCallback(Callback):
    """Diagnostics of the probe set before training, every ``every_n_epochs`` and at the end.

    Under DDP each rank embeds a contiguous share of the probe set and of the augmented views;
    rank 0 gathers them (in probe order), computes every metric by itself and writes; all ranks
    then meet at a barrier. On one process this is the plain pass. ``seconds`` accumulates the time
    spent, to report its cost.
    """

    # images per chunk of augmented views: the unit of work of a rank, and of a seeded generator
    VIEW_CHUNK = 1024

    def __init__(self, run_dir: str | Path, config: DiagnosticsConfig, seed: int = 0, batch_size: int = 256):
        self.run_dir = Path(run_dir)
        self.config = config
        self.seed = seed
        self.batch_size = batch_size  # images per forward pass of the probe set and of the views
        self.done: set[int] = set()
        self.seconds = 0.0

    def run(self, trainer: L.Trainer, module: L.LightningModule, epoch: int) -> None:
        if epoch in self.done:
            return
        self.done.add(epoch)
        data = trainer.datamodule
        view_config = module.config.views if hasattr(module, "make_views") else None
        self.measure(module, data.splits["probe"], data.data.classes, data.data.factors, epoch, view_config,
                     write=trainer.is_global_zero)

    def measure(self, module: torch.nn.Module, probe: ImageSet, classes: Sequence[str], specs: Sequence[Factor],
                epoch: int, view_config: ViewsConfig | None = None, write: bool = True) -> None:
        """One diagnostics pass: embed ``probe`` at every layer, compute every metric, and (with
        ``write``) append the rows to ``diagnostics.csv`` and save ``embeddings/epoch=NNN.npz`` (and
        the probe set itself, once).

        ``module(uint8 images)`` returns a :class:`~workbench.models.vit.ViTOutput` (a
        ``WorkbenchModule`` during training; :class:`~workbench.models.adapters.LayerwiseModel` for
        any other model, :func:`workbench.analysis.analyze.analyze`). ``view_config``: the
        augmentations of the two views behind invariance, alignment and LiDAR (``None``: no views).
        """
        start = time.perf_counter()
        c = self.config
        pooled, tokens, widths = self._embed(module, probe.images)
        subset = subsample_indices(len(probe), c.max_samples, self.seed)
        view_images = probe.images if subset is None else probe.images[subset.to(probe.images.device)]
        views = self._two_views(module, view_images, widths, view_config)
        if pooled is not None:  # rank 0 (or the only process): it holds everything gathered
            with local_only():  # no collective from here: the other ranks are already at the barrier
                rows = self._rows(epoch, pooled, tokens, views, probe, specs)
            if write:
                append_rows(self.run_dir / "diagnostics.csv", rows)
                if c.save_embeddings:
                    self._save_embeddings(epoch, pooled, probe)
                    if not (self.run_dir / "embeddings" / "probe.npz").is_file():
                        save_probe(self.run_dir / "embeddings", probe, classes, specs)
        del pooled, views
        barrier()
        self.seconds += time.perf_counter() - start

    def _rows(self, epoch: int, pooled: dict, tokens: dict, views: list | None, probe: ImageSet,
              specs: Sequence[Factor]) -> list[dict[str, Any]]:
        """The tidy rows of one pass: every metric per (layer, pool), the token metrics, CKA."""
        c = self.config
        rows: list[dict[str, Any]] = []
        for (layer, pool), z in pooled.items():
            metrics = layer_metrics(z, probe.labels, probe.factors, specs, c.coherence, c.knn_k, c.probe_steps,
                                    self.seed, max_samples=c.max_samples)
            if views is not None:
                a, b = views[0][(layer, pool)], views[1][(layer, pool)]
                metrics["invariance"] = float(invariance_score(a, b))
                metrics["alignment"] = float(alignment(a, b))
                metrics["lidar"] = float(lidar(torch.stack([a, b], dim=1)))  # q = 2 augmentations
            rows += [{"epoch": epoch, "layer": layer, "pool": pool, "metric": k, "value": v}
                     for k, v in metrics.items()]
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
        return rows

    def _embed(self, module: L.LightningModule, images: torch.Tensor):
        """Pooled embeddings of the probe images (gathered on rank 0, ``None`` elsewhere), the token
        sample (rank 0) and every (layer, pool)'s width (every rank).

        Rank r embeds rows ``[r * s, (r + 1) * s)`` with ``s = ceil(N / W)``; the last rank repeats
        the last image to fill its share (every rank then sends as many rows, and an empty share is
        impossible), and the repeats are cut off after the gather.
        """
        c = self.config
        n, w, r = images.shape[0], world_size(), rank()
        share = -(-n // w)
        rows = torch.arange(r * share, (r + 1) * share, device=images.device).clamp_max(n - 1)
        mine = images if w == 1 else images[rows]
        local, tokens = layer_embeddings(module, mine, c.pools, self.batch_size,
                                         token_images=c.token_images if r == 0 else 0)
        if r == 0 and min(c.token_images, n) > share:  # the token sample reaches past rank 0's share
            _, more = layer_embeddings(module, images[share : c.token_images], (), self.batch_size,
                                       token_images=c.token_images)
            tokens = {layer: torch.cat([t, more[layer]]) for layer, t in tokens.items()}
        widths = {key: z.shape[1] for key, z in local.items()}
        return _gather_trim(local, n), tokens, widths

    @torch.no_grad()
    def _two_views(self, module: L.LightningModule, images: torch.Tensor, widths: dict,
                   view_config: ViewsConfig | None):
        """Pooled embeddings of two augmented views of every given image (rank 0; ``None`` elsewhere).

        The images are cut into chunks of ``VIEW_CHUNK``; chunk k is augmented with its own generator
        seeded ``seed + 12345 + k * 1_000_003``, so a view depends on the image and its position, not
        on which rank made it. Rank r takes chunks ``[r * s, (r + 1) * s)``, ``s = ceil(chunks / W)``
        (augmentation buffers stay bounded whatever the probe size); missing rows are zero-padded
        (hence ``widths``) for the gather and cut off after it.
        """
        if view_config is None:
            return None
        from ..views import config_global_view

        v = view_config
        n, w, r, size = images.shape[0], world_size(), rank(), self.VIEW_CHUNK
        chunks = -(-n // size)
        share = -(-chunks // w)  # chunks per rank
        parts: list[list[dict]] = [[], []]
        for k in range(r * share, min((r + 1) * share, chunks)):
            generator = torch.Generator(device=images.device).manual_seed(self.seed + 12345 + k * 1_000_003)
            x = images[k * size : (k + 1) * size].float() / 255.0
            for view in range(2):
                crop = config_global_view(x, generator, v, view)  # augmented as the run's global crop `view`
                pooled, _ = layer_embeddings(module, (crop * 255).round().to(torch.uint8), self.config.pools,
                                             self.batch_size)
                parts[view].append(pooled)
        out = []
        for view_parts in parts:
            local = {}
            for key, width in widths.items():
                mine = [p[key] for p in view_parts]
                pad = share * size - sum(len(t) for t in mine) if w > 1 else 0
                if pad > 0:  # only the gather needs equal lengths
                    mine.append(images.new_zeros((pad, width), dtype=torch.float32))
                local[key] = torch.cat(mine)
            out.append(_gather_trim(local, n))
        return None if out[0] is None else out

    def _save_embeddings(self, epoch: int, pooled: dict, probe: ImageSet) -> None:
        def arrays():  # one (layer, pool) at a time: never a float16 copy of every embedding at once
            for (layer, pool), z in pooled.items():
                yield embedding_key(layer, pool), z.cpu().numpy().astype(np.float16)
                yield embedding_key(layer, pool, spectrum=True), covariance_spectrum(z).cpu().numpy()
            if probe.labels is not None:
                yield "labels", probe.labels.cpu().numpy()
            if probe.factors is not None:
                yield "factors", probe.factors.cpu().numpy()
            yield "ids", np.arange(len(probe))

        path = self.run_dir / "embeddings" / f"epoch={epoch:03d}.npz"
        with atomic_open(path, "wb") as f:
            write_npz(f, arrays())

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
