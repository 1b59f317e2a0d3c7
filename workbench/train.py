"""``fit``: config in, run directory out."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger

from .checkpointing import LastCheckpoint
from .config import RunConfig
from .data.datamodule import TensorDataModule
from .diagnostics.callback import DiagnosticsCallback
from .module import WorkbenchModule
from .presets import make_config
from .runs import Run, create_run_dir, write_config, write_summary


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


def fit(
    config: RunConfig | dict | None = None,
    *,
    preset: str | None = None,
    overrides: "list[str] | dict[str, Any] | None" = None,
    callbacks: Sequence[Callback] = (),
    cache_dir: str | Path | None = "data",
) -> Run:
    """Train one run and return its :class:`Run` handle.

    ``fit(preset="supervised", overrides=["trainer.max_epochs=2"])`` starts from the defaults and
    the preset; ``fit(config)`` takes a full config (a :class:`RunConfig` or a dict) and still
    applies ``overrides``. The config is validated, the data loaded and the model built before the
    run directory is created, so an invalid config or missing data leaves nothing behind.
    """
    if config is None:
        config = make_config(preset or "supervised", overrides)
    else:
        base = RunConfig.from_dict(config) if isinstance(config, dict) else config
        config = make_config(preset, overrides, base=base)
    _quiet_lightning()

    datamodule = TensorDataModule(config.data, cache_dir=cache_dir, order_seed=config.seed).prepare()
    L.seed_everything(config.seed, verbose=False)
    module = WorkbenchModule(config, datamodule.info)

    run_dir = create_run_dir(config)
    config.name = run_dir.name
    write_config(run_dir, config)
    write_summary(run_dir, {"status": "running", "name": config.name})

    t = config.trainer
    checkpoint = LastCheckpoint(run_dir / "checkpoints")
    diagnostics = DiagnosticsCallback(run_dir, config.diagnostics, config.seed) if config.diagnostics.enabled else None
    trainer = L.Trainer(
        max_epochs=t.max_epochs, max_steps=t.max_steps, limit_train_batches=t.limit_train_batches,
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=resolve_precision(config),
        logger=CSVLogger(save_dir=config.runs_dir, name=config.name, version=""),
        callbacks=[checkpoint, *([diagnostics] if diagnostics else []), *callbacks], default_root_dir=run_dir, enable_checkpointing=False,
        log_every_n_steps=t.log_every_n_steps, check_val_every_n_epoch=t.check_val_every_n_epoch,
        enable_progress_bar=t.enable_progress_bar, enable_model_summary=False, num_sanity_val_steps=0,
        gradient_clip_val=config.optim.grad_clip,
    )
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule)
        trainer.test(module, datamodule=datamodule, verbose=False)
    except BaseException as exc:
        if trainer.is_global_zero:
            write_summary(run_dir, {"status": "failed", "name": config.name, "error": f"{type(exc).__name__}: {exc}",
                                    "wall_s": time.perf_counter() - start})
        raise
    wall = time.perf_counter() - start
    if trainer.is_global_zero:
        headline = {k: float(v) for k, v in trainer.callback_metrics.items()
                    if k.startswith(("val/", "test/")) and torch.is_tensor(v) and v.numel() == 1}
        write_summary(run_dir, {
            "status": "completed", "name": config.name, "wall_s": round(wall, 2),
            "epochs": trainer.current_epoch, "steps": trainer.global_step,
            "diagnostics_s": round(diagnostics.seconds, 2) if diagnostics else 0.0,
            "device": str(trainer.strategy.root_device), "precision": str(trainer.precision),
            "headline": headline,
        })
    return Run(run_dir)
