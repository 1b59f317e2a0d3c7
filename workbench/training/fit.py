"""``fit``: config in, run directory out."""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback

from ..config import RunConfig, parse_override
from ..data.datamodule import TensorDataModule
from ..distributed import launched_rank
from ..errors import ConfigError
from ..presets import make_config
from ..runs import Run, create_run_dir, write_config, write_summary
from ..validation import validate_config
from .checkpointing import LastCheckpoint, read_checkpoint
from .csv_logger import keep_rows_before
from .diagnostics_callback import DiagnosticsCallback, keep_epochs_until
from .loggers import build_loggers, finish_trackers, tracker_callbacks
from .module import initial_module


def resolve_precision(config: RunConfig) -> str:
    """bf16-mixed on CUDA, full 32-bit elsewhere, unless the config names a precision."""
    t = config.trainer
    if t.precision != "auto":
        return t.precision
    wants_gpu = t.accelerator in ("auto", "gpu", "cuda")
    return "bf16-mixed" if wants_gpu and torch.cuda.is_available() else "32-true"


def _quiet_lightning() -> None:
    # Lightning's start-up banners (GPU available, model summary...) drown a notebook's output.
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*`isinstance.*treespec.*")
    # The run directory already holds config.yaml when the logger starts; nothing is deleted.
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
    # The EMA teacher runs in eval mode on purpose.
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")


RESUMABLE = ("trainer.max_epochs", "trainer.max_steps")
# Set by rank 0 before training: Lightning's DDP launcher re-runs the script for the other ranks
# with this environment, so they find the directory rank 0 created instead of making their own.
RUN_DIR_ENV = "WORKBENCH_RUN_DIR"


def fit(
    config: RunConfig | dict | None = None,
    *,
    preset: str | None = None,
    overrides: "list[str] | dict[str, Any] | None" = None,
    callbacks: Sequence[Callback] = (),
    cache_dir: str | Path | None = "data",
    resume: str | Path | None = None,
) -> Run:
    """Train one run and return its :class:`Run` handle.

    ``fit(preset="supervised", overrides=["trainer.max_epochs=2"])`` starts from the defaults and
    the preset; ``fit(config)`` takes a full config (a :class:`RunConfig` or a dict) and still
    applies ``overrides``. The config is validated, the data loaded and the model built before the
    run directory is created, so an invalid config or missing data leaves nothing behind.

    ``fit(resume="runs/<name>")`` continues a stopped run in its own directory, from its
    ``checkpoints/last.ckpt`` and with its ``config.yaml``; ``overrides`` may only change
    ``trainer.max_epochs`` and ``trainer.max_steps``. Rows of ``metrics.csv`` and
    ``diagnostics.csv`` logged after the checkpoint are dropped, and the resumed epochs are appended.
    On CPU a run stopped at any point and resumed (from the end of its last complete epoch) writes
    the metrics of an uninterrupted run with the same config (the learning-rate and weight schedules
    follow ``trainer.max_epochs``, so a run extended with a larger ``max_epochs`` is not the same as
    one started with it).

    Under DDP (``trainer.devices=2 trainer.strategy=ddp``) every rank runs this function; only
    rank 0 creates and writes the run directory, and the other ranks use that one (ranks started
    outside Lightning, by torchrun or SLURM, need an explicit ``name`` to agree on it). A process
    group this call started (Lightning's launcher) is destroyed when it returns or fails; a group
    that existed before the call is left to its owner.
    """
    plan = _plan(config, preset, overrides, resume)
    _quiet_lightning()
    datamodule = TensorDataModule(plan.config.data, cache_dir=cache_dir, order_seed=plan.config.seed).prepare()
    module = initial_module(plan.config, datamodule.info)
    _open_run_dir(plan)
    trainer, diagnostics, loggers = _trainer(plan, callbacks)
    return Run(_train(trainer, module, datamodule, plan, diagnostics, loggers))


@dataclass
class _Plan:
    """What a call of :func:`fit` trains: the validated config, the run directory (None until rank 0
    creates it for a new run) and the checkpoint it resumes from (None for a new run)."""

    config: RunConfig
    run_dir: Path | None = None
    checkpoint: Path | None = None
    secondary: bool = False  # a process a DDP launcher started for a rank other than 0: it only trains


def _plan(config, preset, overrides, resume) -> _Plan:
    """Resolve the arguments of :func:`fit` into a validated config, before anything is loaded or written."""
    secondary = launched_rank() > 0
    if resume is not None:
        if config is not None or preset is not None:
            raise ConfigError("resume", str(resume), "a run directory alone: the run's config.yaml is the config "
                                                     "(do not pass a config or a preset)")
        run_dir, config, checkpoint = _resume_target(Path(resume), overrides)
        return _Plan(config, run_dir, checkpoint, secondary)
    base = RunConfig.from_dict(config) if isinstance(config, dict) else config
    config = make_config(preset or ("supervised" if base is None else None), overrides, base=base)
    return _Plan(config, _rank_zero_run_dir(config) if secondary else None, None, secondary)


def _open_run_dir(plan: _Plan) -> None:
    """Rank 0 creates the run directory (or, resuming, drops the rows logged after the checkpoint)
    and writes config.yaml and a "running" summary; other ranks use rank 0's directory."""
    if plan.secondary:
        plan.config.name = plan.run_dir.name
        return
    if plan.checkpoint is None:
        plan.run_dir = create_run_dir(plan.config)
        plan.config.name = plan.run_dir.name
    else:
        state = read_checkpoint(plan.checkpoint)
        keep_rows_before(plan.run_dir / "metrics.csv", int(state["epoch"]), int(state["global_step"]))
        keep_epochs_until(plan.run_dir / "diagnostics.csv", int(state["epoch"]) + 1)
        del state
    write_config(plan.run_dir, plan.config)
    write_summary(plan.run_dir, {"status": "running", "name": plan.config.name})
    os.environ[RUN_DIR_ENV] = str(plan.run_dir.resolve())


def _trainer(plan: _Plan, callbacks: Sequence[Callback]):
    """Lightning's Trainer for the run, its diagnostics callback (None when off) and its loggers."""
    config, run_dir, t = plan.config, plan.run_dir, plan.config.trainer
    diagnostics = DiagnosticsCallback(run_dir, config.diagnostics, config.seed) if config.diagnostics.enabled else None
    loggers = build_loggers(config, run_dir)  # metrics.csv first, then the trackers of trainer.loggers
    trainer = L.Trainer(
        max_epochs=t.max_epochs, max_steps=t.max_steps, limit_train_batches=t.limit_train_batches,
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=resolve_precision(config), logger=loggers,
        callbacks=[LastCheckpoint(run_dir / "checkpoints"), *([diagnostics] if diagnostics else []),
                   *tracker_callbacks(loggers, run_dir), *callbacks],
        default_root_dir=run_dir, enable_checkpointing=False,
        log_every_n_steps=t.log_every_n_steps, check_val_every_n_epoch=t.check_val_every_n_epoch,
        enable_progress_bar=t.enable_progress_bar, enable_model_summary=False, num_sanity_val_steps=0,
        gradient_clip_val=config.optim.grad_clip,
    )
    return trainer, diagnostics, loggers


def _train(trainer: L.Trainer, module, datamodule, plan: _Plan, diagnostics, loggers) -> Path:
    """Fit, test and write the summary; returns rank 0's run directory on every rank."""
    # Lightning starts a process group under DDP and leaves it alive; threads of a gloo / NCCL group
    # still running at interpreter exit abort the process ("terminate called without an active
    # exception"). A group this call started is destroyed when it ends, failed or not; one the
    # caller made (torchrun scripts) is left alone.
    owns_group = not (dist.is_available() and dist.is_initialized())
    start, failed = time.perf_counter(), True
    try:
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=plan.checkpoint, weights_only=True)
            trainer.test(module, datamodule=datamodule, verbose=False)
        except BaseException as exc:
            if trainer.is_global_zero:
                write_summary(plan.run_dir, {"status": "failed", "name": plan.config.name,
                                             "error": f"{type(exc).__name__}: {exc}", "wall_s": time.perf_counter() - start})
            raise
        if trainer.is_global_zero:
            write_summary(plan.run_dir, _completed_summary(trainer, plan, diagnostics, time.perf_counter() - start))
        # every rank returns rank 0's directory (a launched rank's environment can be from an earlier fit)
        run_path = Path(trainer.strategy.broadcast(str(plan.run_dir), src=0))
        failed = False
    finally:
        finish_trackers(loggers, failed)
        if owns_group and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return run_path


def _completed_summary(trainer: L.Trainer, plan: _Plan, diagnostics, wall: float) -> dict[str, Any]:
    headline = {k: float(v) for k, v in trainer.callback_metrics.items()
                if k.startswith(("val/", "test/")) and torch.is_tensor(v) and v.numel() == 1}
    return {
        "status": "completed", "name": plan.config.name, "wall_s": round(wall, 2),
        "epochs": trainer.current_epoch, "steps": trainer.global_step,
        "diagnostics_s": round(diagnostics.seconds, 2) if diagnostics else 0.0,
        "device": str(trainer.strategy.root_device), "precision": str(trainer.precision),
        "headline": headline, **({"resumed": True} if plan.checkpoint is not None else {}),
    }


def _rank_zero_run_dir(config: RunConfig) -> Path:
    """On a rank other than 0: the run directory rank 0 creates."""
    shared = os.environ.get(RUN_DIR_ENV)
    if not shared and not config.name:
        raise ConfigError("name", config.name, "an explicit run name when the ranks are started outside Lightning "
                                               "(torchrun, SLURM), so that every rank uses the same run directory")
    return Path(shared) if shared else Path(config.runs_dir) / config.name


def _resume_target(run_dir: Path, overrides: "list[str] | dict[str, Any] | None") -> tuple[Path, RunConfig, Path]:
    """The run directory, its config (with the allowed overrides, validated) and its checkpoint."""
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    if not (run_dir / "config.yaml").is_file() or not checkpoint.is_file():
        raise ConfigError("resume", str(run_dir), "a run directory holding config.yaml and checkpoints/last.ckpt")
    items = list(overrides.items()) if isinstance(overrides, dict) else [parse_override(o) for o in overrides or []]
    for key, value in items:
        if key not in RESUMABLE:
            raise ConfigError(key, value, f"not changeable when resuming; only {', '.join(RESUMABLE)} may be overridden")
    config = RunConfig.from_yaml(run_dir / "config.yaml").with_overrides(dict(items))
    config.name = run_dir.name  # the directory's name, also when it was renamed since
    validate_config(config)
    read_checkpoint(checkpoint)  # a damaged last.ckpt is reported before anything is written
    return run_dir, config, checkpoint
