"""What every part of ``gpucheck`` shares: sizes, the working context, loss comparison, the sync
watch, the compile substitute, per-part budgets and items (see :mod:`workbench.bench.gpucheck`)."""

from __future__ import annotations

import contextlib
import math
import statistics
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from lightning.pytorch.callbacks import Callback

#: Losses of two runs that should train alike (bf16-mixed against 32-true; compiled against eager)
#: agree when every loss is finite and
#:
#: * ``first``: the first step's losses -- the same weights and the same batch, so any difference is
#:   the arithmetic's -- differ by at most this fraction, and
#: * ``mean``: the means of the last ``tail`` losses differ by at most this fraction,
#:
#: each relative to the reference run's value, or to ``floor`` times its first loss when that is
#: larger (a loss that falls towards 0, like the collapsing toy's, is then compared on the scale it
#: started from). bf16 keeps 8 significant bits (a relative rounding of up to 2^-8 = 0.4% per
#: value). After a few dozen optimiser steps two runs that differ only in rounding follow different
#: trajectories, so single later steps are not bounded (the largest difference is reported); the
#: mean of the last steps bounds where the curves went. Measured on the CPU (bf16 autocast against
#: float32, width 32, depth 2, patch 8, batch 32, 50 steps, every preset, seeds 0 and 1): first
#: steps within 0.22%, last-10 means within 3.7% (Barlow Twins, whose loss changes by about 14% from
#: one step to the next; the other presets within 0.6%). The bounds leave room for the GPU's larger
#: model.
LOSS_TOLERANCE = {"tail": 10, "first": 0.02, "mean": 0.10, "floor": 0.05}


@dataclass(frozen=True)
class Sizes:
    """Run lengths and sizes of one mode (GPU or dry run)."""

    base: tuple[str, ...]  # model and data of (a), (b), (d)
    precision_steps: int
    sync_steps: int  # (d): the first steps watched
    compile_presets: tuple[str, ...]
    compile_steps: int
    compile_warmup: int
    throughput_model: tuple[str, ...]
    throughput_batches: tuple[int, ...]
    throughput_steps: int
    throughput_warmup: int
    diagnostics_model: tuple[str, ...]
    layout_points: int
    layout_epochs: int
    notebook_steps: int
    notebook_extra: tuple[tuple[str, Any], ...]
    cifar_per_batch: int
    throughput_presets: tuple[str, ...] = ("supervised", "dino", "mae")


GPU = Sizes(
    base=("data.shapes.num_images=20000", "data.batch_size=256", "model.patch_size=4", "model.width=192",
          "model.depth=6", "model.heads=6", "diagnostics.enabled=false"),
    precision_steps=50, sync_steps=20,
    compile_presets=("supervised", "mae", "dino"), compile_steps=30, compile_warmup=10,
    throughput_model=("model.patch_size=4", "model.width=192", "model.depth=12", "model.heads=3"),
    throughput_batches=(256, 1024), throughput_steps=20, throughput_warmup=5,
    diagnostics_model=("data.shapes.num_images=12000", "data.probe_size=1000", "model.patch_size=4",
                       "model.width=192", "model.depth=6", "model.heads=6"),
    layout_points=1000, layout_epochs=200,
    notebook_steps=3, notebook_extra=(), cifar_per_batch=10000,
)

_TINY_MODEL = ("model.patch_size=8", "model.width=16", "model.depth=2", "model.heads=2", "views.local_crops=2")
DRY = Sizes(
    base=("data.shapes.num_images=400", "data.batch_size=16", *_TINY_MODEL, "diagnostics.enabled=false"),
    precision_steps=3, sync_steps=2,
    compile_presets=("supervised",), compile_steps=2, compile_warmup=1,
    throughput_model=_TINY_MODEL, throughput_batches=(8, 16), throughput_steps=2, throughput_warmup=1,
    diagnostics_model=("data.shapes.num_images=600", "data.probe_size=40", *_TINY_MODEL,
                       "diagnostics.token_images=8", "diagnostics.probe_steps=5"),
    layout_points=40, layout_epochs=10,
    notebook_steps=2,
    notebook_extra=(("data.shapes.num_images", 400), ("model.patch_size", 8), ("model.width", 16), ("model.depth", 2),
                    ("model.heads", 2), ("views.local_crops", 2), ("data.batch_size", 16), ("data.probe_size", 32),
                    ("diagnostics.token_images", 8), ("diagnostics.probe_steps", 5)),
    cifar_per_batch=60,
)

#: A nominal peak for the dry run's fraction (a CPU has no entry in the peak table).
DRY_PEAK_TFLOPS = 1.0


# ---- pieces shared by the parts ---------------------------------------------------------------


class LossRecorder(Callback):
    """Every training step's total loss, kept on the device until :meth:`losses` reads them all at
    once (so recording adds no host synchronisation to the steps)."""

    def __init__(self) -> None:
        self._losses: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self._losses.append(loss.detach().float())

    def losses(self) -> list[float]:
        return torch.stack(self._losses).tolist() if self._losses else []


def compare_losses(reference: Sequence[float], other: Sequence[float], tail: int = LOSS_TOLERANCE["tail"],
                   first: float = LOSS_TOLERANCE["first"], mean: float = LOSS_TOLERANCE["mean"],
                   floor: float = LOSS_TOLERANCE["floor"]) -> dict[str, Any]:
    """Whether two runs' per-step losses agree (:data:`LOSS_TOLERANCE`).

    Returns ``{"ok", "steps", "finite", "first_rel", "mean_ref", "mean_other", "mean_rel",
    "step_rel", "worst_step"}`` with ``scale(x) = max(|x|, floor * |ref[0]|)``: ``first_rel`` is
    ``|other[0] - ref[0]| / scale(ref[0])``; ``mean_rel`` is ``|mean(other[-tail:]) -
    mean(ref[-tail:])| / scale(mean(ref[-tail:]))``; ``step_rel`` the largest ``|other[i] - ref[i]|
    / scale(ref[i])`` (at ``worst_step``; reported, not judged). Runs of different lengths, empty
    runs or any non-finite loss do not agree.
    """
    n = min(len(reference), len(other))
    values = list(reference) + list(other)
    finite = bool(values) and all(math.isfinite(v) for v in values)
    out: dict[str, Any] = {"ok": False, "steps": n, "finite": finite, "first_rel": None, "mean_ref": None,
                           "mean_other": None, "mean_rel": None, "step_rel": None, "worst_step": None}
    if n == 0 or not finite:
        return out
    base = floor * abs(reference[0])
    rel = [abs(b - a) / max(abs(a), base, 1e-12) for a, b in zip(reference[:n], other[:n])]
    k = min(tail, n)
    ma = statistics.fmean(reference[n - k:n])
    mb = statistics.fmean(other[n - k:n])
    mean_rel = abs(mb - ma) / max(abs(ma), base, 1e-12)
    worst = max(range(n), key=rel.__getitem__)
    out.update(first_rel=rel[0], mean_ref=ma, mean_other=mb, mean_rel=mean_rel, step_rel=rel[worst], worst_step=worst,
               ok=len(reference) == len(other) and rel[0] <= first and mean_rel <= mean)
    return out
    k = min(tail, n)
    ma = statistics.fmean(reference[n - k:n])
    mb = statistics.fmean(other[n - k:n])
    base = floor * abs(reference[0])
    mean_rel = abs(mb - ma) / max(abs(ma), base, 1e-12)
    rel = [abs(b - a) / max(abs(a), base, 1e-12) for a, b in zip(reference[:n], other[:n])]
    worst = max(range(n), key=rel.__getitem__)
    out.update(mean_ref=ma, mean_other=mb, mean_rel=mean_rel, step_rel=rel[worst], worst_step=worst,
               ok=len(reference) == len(other) and mean_rel <= mean and rel[worst] <= step)
    return out


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception and the innermost workbench / Lightning frames it came from."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/workbench/" in f.filename or "/lightning/" in f.filename]
    where = " <- ".join(f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno} {f.name}"
                        for f in reversed(frames[-3:]))
    text = f"{type(exc).__name__}: {exc}".strip()
    if len(text) > 600:
        text = text[:600] + " ..."
    return text + (f" (at {where})" if where else "")


def is_cuda_sync_error(exc: BaseException) -> bool:
    return "synchronizing CUDA operation" in str(exc) or "synchronizing cuda operation" in str(exc).lower()


class SyncWatch:
    """Watches the training steps below ``until`` that write no log: with CUDA's detector on a GPU
    (:class:`CudaSyncDebug`, which raises at the first synchronising call), elsewhere with
    :class:`HostSyncRecorder` (which records them). Use as a context manager around ``fit`` with
    :attr:`callbacks`."""

    def __init__(self, cuda: bool, until: int, log_every: int):
        from .host_sync import CudaSyncDebug, HostSyncRecorder, StepWindows

        self.cuda, self.until, self.log_every = cuda, until, log_every
        if cuda:
            self.debug = CudaSyncDebug(until)
            self.recorder = None
            self.callbacks: list[Callback] = [self.debug]
        else:
            self.debug = None
            self.recorder = HostSyncRecorder()
            self.callbacks = [StepWindows(self.recorder)]

    mechanism = property(lambda self: "torch.cuda.set_sync_debug_mode('error')" if self.cuda else
                         "HostSyncRecorder: synchronising ops recorded by name (CPU substitute)")

    def __enter__(self) -> "SyncWatch":
        if self.recorder is not None:
            self.recorder.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.recorder is not None:
            self.recorder.__exit__(*exc)
        else:
            torch.cuda.set_sync_debug_mode("default")

    def watched(self, steps_run: int) -> int:
        """How many steps were watched (of the ``steps_run`` the run took)."""
        from .host_sync import is_logging_step

        if self.debug is not None:
            return self.debug.watched
        return sum(1 for s in range(min(steps_run, self.until)) if not is_logging_step(s, self.log_every))

    def found(self) -> list[str]:
        """The synchronising calls recorded on watched steps (the recorder; CUDA raises instead)."""
        from .host_sync import is_logging_step

        if self.recorder is None:
            return []
        return [f"step {s.step}: {s.what} at {s.where}" for s in self.recorder.syncs
                if s.step is not None and s.step < self.until and not is_logging_step(s.step, self.log_every)]


@contextlib.contextmanager
def dynamo_eager_backend() -> Iterator[None]:
    """``torch.compile`` with dynamo's ``eager`` backend while inside: the graphs are traced and
    guarded as with the default backend, but no code is generated (the dry run's substitute: the
    CPU code generator takes minutes)."""
    original = torch.compile

    def compile_eager(*args, **kwargs):
        kwargs["backend"] = "eager"
        return original(*args, **kwargs)

    torch.compile = compile_eager
    try:
        yield
    finally:
        torch.compile = original


class PartBudget:
    """One part's deadline; an item may start when the time left covers the longest item so far
    (``first_guess`` before any)."""

    def __init__(self, deadline: float, first_guess: float):
        self.deadline, self.longest = deadline, first_guess

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def allows(self) -> bool:
        return self.left() >= self.longest

    def reason(self) -> str:
        return f"time budget: {max(self.left(), 0.0):.0f} s left of this part, an item takes ~{self.longest:.0f} s"

    def took(self, seconds: float) -> None:
        self.longest = max(self.longest, seconds)


@dataclass
class Check:
    """What every part needs: sizes, device, the working directory, shared results."""

    sizes: Sizes
    dry_run: bool
    device: torch.device
    work: Path
    data_dir: Path
    peak_tflops: float | None
    log: Callable[[str], None]
    presets: tuple[str, ...]
    sync: dict[str, dict] = field(default_factory=dict)  # (d)'s results, filled by (a)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def runs_dir(self) -> Path:
        return self.work / "runs"

    @property
    def cache_dir(self) -> Path:
        return self.work / "data"

    def fit(self, preset: str, overrides: Sequence[str] | dict, callbacks: Sequence[Callback] = ()):
        from ..training.fit import fit

        if isinstance(overrides, dict):
            overrides = {**overrides, "runs_dir": str(self.runs_dir)}
        else:
            overrides = [*overrides, f"runs_dir={self.runs_dir}"]
        if self.dry_run:
            # the dry run's "device" is the CPU; a GPU, if there is one, is left alone
            overrides = {**overrides, "trainer.accelerator": "cpu"} if isinstance(overrides, dict) \
                else [*overrides, "trainer.accelerator=cpu"]
        return fit(preset=preset, overrides=overrides, callbacks=list(callbacks), cache_dir=self.cache_dir)


def _item(name: str, status: str, **values) -> dict[str, Any]:
    return {"name": name, "status": status, **values}


def _run_items(budget: PartBudget, names: Sequence[str], one: Callable[[str], dict], log) -> list[dict]:
    """``one(name)`` for every name while the budget allows; an exception is an ``error`` item."""
    items = []
    for name in names:
        if not budget.allows():
            items.append(_item(name, "not run", reason=budget.reason()))
            continue
        log(f"  {name}")
        start = time.perf_counter()
        try:
            item = one(name)
        except Exception as exc:  # one item's failure is reported; the others go on
            item = _item(name, "error", error=describe(exc))
        item["seconds"] = round(time.perf_counter() - start, 1)
        budget.took(item["seconds"])
        items.append(item)
    return items


def _fmt(value: float | None, spec: str = ".3g", suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:{spec}}{suffix}"
