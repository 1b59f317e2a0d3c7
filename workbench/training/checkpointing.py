"""``checkpoints/last.ckpt``, replaced atomically at the end of every training epoch.

Lightning's ``ModelCheckpoint`` writes in place; a run killed mid-write would leave a truncated
``last.ckpt``. Writing to a temporary file and renaming it keeps the previous checkpoint intact
until the new one is complete.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback


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
