"""``checkpoints/last.ckpt``: written atomically at the end of every training epoch, and read back
with a clear error when the file is not a readable checkpoint.

Lightning's ``ModelCheckpoint`` writes in place; a run killed mid-write would leave a truncated
``last.ckpt``. Writing to a temporary file and renaming it keeps the previous checkpoint intact
until the new one is complete. A file truncated or damaged by other means (a full disk, a partial
copy) is caught by :func:`read_checkpoint`, which every reader of a checkpoint goes through.
"""

from __future__ import annotations

import os
from pathlib import Path

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from ..errors import CheckpointError


def read_checkpoint(path: str | Path, mmap: bool = True) -> dict[str, Any]:
    """The checkpoint at ``path`` as a dict, loaded on the CPU with ``weights_only=True``.

    Raises :class:`~workbench.errors.CheckpointError` naming the file when it does not exist or is
    not a readable checkpoint (truncated, corrupt, or not a torch checkpoint at all).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: the run has no checkpoint there")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # torch raises RuntimeError, pickle / zip / EOF errors for damaged files
        raise CheckpointError(
            f"{path} is not a readable checkpoint: it is truncated or corrupt "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}). "
            "Restore it from a copy, or train the run again; a resumed run needs its checkpoint") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise CheckpointError(f"{path} is not a workbench checkpoint: it holds no 'state_dict' "
                              f"(found {type(state).__name__}{' with keys ' + ', '.join(map(str, state)) if isinstance(state, dict) else ''})")
    return state


def load_module(path: str | Path):
    """The :class:`~workbench.training.module.WorkbenchModule` saved in checkpoint ``path``, on the
    CPU in eval mode (its config comes from the checkpoint's hyper-parameters)."""
    from .module import WorkbenchModule

    read_checkpoint(path)  # a clear error for a missing or damaged file, before Lightning reads it
    return WorkbenchModule.load_from_checkpoint(path, map_location="cpu", weights_only=True).eval()


class LastCheckpoint(Callback):
    def __init__(self, dirpath: str | Path, filename: str = "last.ckpt"):
        self.path = Path(dirpath) / filename
        self.saved_step = -1

    def save(self, trainer: L.Trainer) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(tmp, weights_only=False)  # every rank calls it; only rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        self.saved_step = trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A run stopped by trainer.max_steps in the middle of an epoch still leaves its last state.
        if self.saved_step != trainer.global_step:
            self.save(trainer)
