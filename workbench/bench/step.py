"""Training-step time: the workbench (Lightning, objectives, logging) against a plain PyTorch loop.

Both sides train the same preset on the same data, on the same device, with the same modules:

* **workbench**: ``wb.fit`` itself -- the Lightning trainer, the :class:`WorkbenchModule` with its
  objectives, views, non-finite tracking, monitors and logging at the default interval -- with
  diagnostics disabled (their cost is measured separately).
* **plain loop**: a hand-written ``for batch in batches: zero_grad, forward, loss, backward, clip,
  step, EMA`` over the library's ``nn.Module``\\ s -- the :class:`VisionTransformer`, the
  objective's head (a linear classifier for ``supervised``; for ``dino`` the library's
  :class:`DINOObjective` -- head, EMA head and loss -- and an EMA teacher backbone, on the same
  multi-crop views), AdamW with
  the same parameter groups, learning-rate schedule and gradient clipping, batches from the same
  :class:`TensorBatches`. It logs nothing, checks nothing and keeps no metrics: the floor the
  workbench is measured against.

A step's time is the interval between the starts of consecutive batches (so data slicing,
logging and hooks are inside it), after ``warmup`` steps; intervals that span an epoch end
(validation, checkpoint) are dropped; the median over the measured steps is reported. On CUDA
both sides synchronise at every timestamp, so an interval is the device's time, not the time to
queue kernels.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

from ..config import RunConfig
from ..presets import make_config
from ..training.fit import resolve_precision

#: Presets the plain loop reproduces.
PRESETS = ("supervised", "dino")


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(Callback):
    """Timestamps of every training batch start (and the epoch each belongs to)."""

    def __init__(self) -> None:
        self.starts: list[tuple[int, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        _synchronise(pl_module.device)
        self.starts.append((trainer.current_epoch, time.perf_counter()))


def step_intervals(starts: Sequence[tuple[int, float]], warmup: int) -> list[float]:
    """Seconds between consecutive batch starts of the same epoch, skipping the first ``warmup``
    batches. ``[(0, 0.0), (0, 1.0), (0, 3.0), (1, 9.0), (1, 10.0)]`` with ``warmup=0`` gives
    ``[1.0, 2.0, 1.0]`` (the interval across the epoch end is dropped)."""
    out = []
    for (epoch_a, a), (epoch_b, b) in zip(starts[warmup:], starts[warmup + 1:]):
        if epoch_a == epoch_b:
            out.append(b - a)
    return out


def workbench_step_times(preset: str, overrides: Sequence[str], steps: int, warmup: int,
                         runs_dir: str | Path, cache_dir: str | Path | None = "data") -> list[float]:
    """Per-step seconds of ``wb.fit`` (diagnostics off, everything else as configured)."""
    from ..training.fit import fit

    timer = StepTimer()
    fit(preset=preset, overrides=[*overrides, "diagnostics.enabled=false", f"trainer.max_steps={warmup + steps + 1}",
                                  f"runs_dir={runs_dir}"], callbacks=[timer], cache_dir=cache_dir)
    return step_intervals(timer.starts, warmup)


def _optimiser(config: RunConfig, modules: dict[str, torch.nn.Module], total_steps: int, device: torch.device):
    """The module's optimiser (:func:`workbench.training.optim.build_optimiser`) over the loop's modules."""
    from ..training.optim import build_optimiser

    named = ((f"{prefix}.{name}", p) for prefix, module in modules.items() for name, p in module.named_parameters())
    skip = {f"backbone.{name}" for name in modules["backbone"].no_weight_decay()}
    return build_optimiser(config.optim, named, skip, total_steps, device)


def plain_step_times(preset: str, overrides: Sequence[str], steps: int, warmup: int,
                     cache_dir: str | Path | None = "data", device: str | torch.device | None = None,
                     losses: list[float] | None = None) -> list[float]:
    """Per-step seconds of the hand-written loop for ``preset`` (one of :data:`PRESETS`).

    ``losses``: a list to receive every step's loss (read from the device after the loop). With the
    same seed, both presets start from the same weights, batches and crops as ``wb.fit``, so their
    losses match the workbench's logged ``train/loss``.
    """
    from ..data.datamodule import TensorBatches, TensorDataModule
    from ..objectives.supervised import LinearHead
    from ..schedules import build_schedule
    from ..training.module import backbone_context, build_backbone, step_generator
    from ..views import config_multi_crop

    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is invalid: the plain loop exists for {', '.join(PRESETS)}")
    config = make_config(preset, overrides)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    data = TensorDataModule(config.data, cache_dir=cache_dir, order_seed=config.seed).prepare()
    info = data.info
    torch.manual_seed(config.seed)
    backbone = build_backbone(config, info).to(device)
    modules: dict[str, torch.nn.Module] = {"backbone": backbone}
    mean = torch.tensor(info.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, device=device).view(1, -1, 1, 1)
    depth, pool = backbone.depth, backbone.pool

    if preset == "supervised":
        head = LinearHead(backbone.width, info.num_classes, normalise=False).to(device)
        modules["head"] = head

        def loss_of(batch: dict[str, torch.Tensor], generator: torch.Generator, step: int) -> torch.Tensor:
            x = (batch["images"].float() / 255.0 - mean) / std
            return F.cross_entropy(head(backbone(x).pooled(depth, pool)).float(), batch["labels"])
    else:
        # DINO's math is the library's own objective (its head, EMA head and loss), called on views
        # and forwards made here: what the plain loop leaves out is Lightning, logging and checks.
        from ..models.teacher import EMATeacher
        from ..objectives.base import StepInputs
        from ..objectives.registry import build_objective

        objective = build_objective("dino", config.objectives["dino"], backbone_context(backbone, info.num_classes))
        objective = objective.to(device)
        teacher = EMATeacher(backbone)
        weight = build_schedule(config.objectives["dino"].weight, "objectives.dino.weight")
        modules["objectives.dino"] = objective  # the names WorkbenchModule gives these parameters
        v = config.views

        def loss_of(batch: dict[str, torch.Tensor], generator: torch.Generator, step: int) -> torch.Tensor:
            x = batch["images"].float() / 255.0
            globals_, locals_ = config_multi_crop(x, generator, v, backbone.patch_size)
            views = {"global": (torch.cat(globals_) - mean) / std}
            if locals_:
                views["local"] = (torch.cat(locals_) - mean) / std
            inputs = StepInputs(batch=batch, views=views, student={k: backbone(x) for k, x in views.items()},
                                step=step, total_steps=total, sample_generator=generator,
                                monitor=False)
            inputs.teacher = {"global": teacher(views["global"])}
            terms = objective(inputs).terms  # summed, then weighted, as WorkbenchModule combines them
            w = weight.value(step, total)
            return sum(w * value.float() for value in terms.values())

    total = warmup + steps + 1
    optimiser, scheduler = _optimiser(config, modules, total, device)
    momentum = build_schedule(config.teacher.momentum, "teacher.momentum")
    params = [q for group in optimiser.param_groups for q in group["params"]]  # Lightning clips in this order
    recorded: list[torch.Tensor] = []
    batches = TensorBatches(data.splits["train"].to(device), config.data.batch_size, shuffle=True, seed=config.seed,
                            drop_last=True)
    # The precision wb.fit would use for this config (bf16-mixed autocast on CUDA unless overridden).
    bf16 = device.type == "cuda" and resolve_precision(config) == "bf16-mixed"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    for m in modules.values():
        m.train()

    starts: list[tuple[int, float]] = []
    step, epoch = 0, 0
    while step < total:
        batches.epoch = lambda e=epoch: e
        for batch in batches:
            if step == total:
                break
            _synchronise(device)
            starts.append((epoch, time.perf_counter()))
            with autocast:
                # the crops of wb.fit's step: the same per-step stream of this single process (rank 0)
                loss = loss_of(batch, step_generator(config.seed, "train", step, 0, device), step)
            recorded.append(loss.detach())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if config.optim.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, config.optim.grad_clip)
            optimiser.step()
            scheduler.step()
            if preset == "dino":
                # after the optimiser step, as Lightning's on_train_batch_end sees it: global_step
                # already counts this step
                m = momentum.value(step + 1, total)
                teacher.update(backbone, m)
                objective.ema_update(m)
            step += 1
        epoch += 1
    if losses is not None:
        losses.extend(torch.stack(recorded).tolist())
    return step_intervals(starts, warmup)


def compare_step(preset: str, overrides: Sequence[str], steps: int, warmup: int, runs_dir: str | Path,
                 cache_dir: str | Path | None = "data", repeats: int = 2,
                 log: Callable[[str], None] = lambda _: None) -> dict[str, float]:
    """Median per-step milliseconds of both sides and their ratio (workbench / plain).

    The two sides alternate ``repeats`` times, so a change in the machine's load during the
    measurement hits both; the medians pool every measured step of a side.
    """
    plain, workbench = [], []
    for _ in range(repeats):
        log(f"  {preset}: plain PyTorch loop ({steps} steps)")
        plain += plain_step_times(preset, overrides, steps, warmup, cache_dir)
        log(f"  {preset}: wb.fit ({steps} steps)")
        workbench += workbench_step_times(preset, overrides, steps, warmup, runs_dir, cache_dir)
    plain_ms, workbench_ms = 1000 * statistics.median(plain), 1000 * statistics.median(workbench)
    return {"plain_ms": plain_ms, "workbench_ms": workbench_ms, "ratio": workbench_ms / plain_ms,
            "steps": len(workbench), "plain_steps": len(plain)}
