"""The LightningModule: one straight path from a batch to the weighted sum of objectives.

    batch (uint8 images on device) -> views -> one backbone forward per view
      -> each enabled objective reads the shared outputs -> loss terms -> weighted sum -> logs

Objectives never run the backbone themselves, so adding one never adds a forward pass that another
objective already paid for.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import lightning as L
import torch
from torch import nn

from .config import RunConfig
from .data.datamodule import DataInfo
from .errors import NonFiniteLossError
from .objectives import BuildContext, Needs, StepInputs, build_objective
from .schedules import warmup_cosine
from .vit import ViTOutput, VisionTransformer


def build_backbone(config: RunConfig, info: DataInfo) -> VisionTransformer:
    m = config.model
    return VisionTransformer(
        image_size=info.image_size, patch_size=m.patch_size, in_channels=info.channels, width=m.width,
        depth=m.depth, heads=m.heads, mlp_ratio=m.mlp_ratio, pool=m.pool, registers=m.registers,
        drop_path=m.drop_path, qkv_bias=m.qkv_bias, gradient_isolation=m.gradient_isolation,
    )


class WorkbenchModule(L.LightningModule):
    """A ViT trained with any weighted combination of objectives.

    Args:
        config: a :class:`RunConfig` or its ``to_dict()``.
        data_info: a :class:`DataInfo` or its ``to_dict()`` (channels, size, classes, pixel stats).

    Both are stored as plain dictionaries in the checkpoint, so ``load_from_checkpoint`` rebuilds
    the module without the dataset and the checkpoint loads with ``weights_only=True``.
    """

    def __init__(self, config: RunConfig | dict, data_info: DataInfo | dict):
        super().__init__()
        config_dict = config.to_dict() if isinstance(config, RunConfig) else config
        info_dict = data_info.to_dict() if isinstance(data_info, DataInfo) else data_info
        self.save_hyperparameters({"config": config_dict, "data_info": info_dict}, logger=False)
        self.config = RunConfig.from_dict(config_dict)
        self.data_info = DataInfo.from_dict(info_dict)

        self.backbone = build_backbone(self.config, self.data_info)
        b = self.backbone
        context = BuildContext(
            width=b.width, depth=b.depth, patch_size=b.patch_size, grid=b.grid, channels=b.in_channels,
            image_size=b.image_size, num_prefix=b.num_prefix, num_classes=self.data_info.num_classes,
            pool=b.pool,
        )
        self.objectives = nn.ModuleDict(
            {name: build_objective(name, cfg, context) for name, cfg in self.config.active_objectives().items()}
        )
        self.objective_weights = {name: cfg.weight for name, cfg in self.config.active_objectives().items()}
        needs = [o.needs for o in self.objectives.values()]
        self.needs = Needs(
            views=tuple(sorted({v for n in needs for v in n.views})),
            teacher=any(n.teacher for n in needs),
            labels=any(n.labels for n in needs),
        )
        c = self.data_info.channels
        self.register_buffer("pixel_mean", torch.tensor(self.data_info.mean).view(1, c, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(self.data_info.std).view(1, c, 1, 1), persistent=False)
        if self.config.trainer.compile:
            self.backbone.compile()
        # First step at which each loss term became non-finite (-1: never); kept on the device so
        # the check costs no host synchronisation until the logging interval.
        self._term_names: list[str] = []
        self._first_bad: torch.Tensor | None = None

    # ---- the data path --------------------------------------------------------------------------

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 B x C x H x W -> float, standardised with the training set's channel statistics."""
        return (images.float() / 255.0 - self.pixel_mean) / self.pixel_std

    def make_views(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"clean": self.normalise(batch["images"])}

    def forward(self, images: torch.Tensor) -> ViTOutput:
        """Backbone output for uint8 images (what diagnostics and notebooks call)."""
        return self.backbone(self.normalise(images))

    def compute_losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total weighted loss and every term / metric, keyed ``<objective>/<name>``."""
        views = self.make_views(batch)
        student = {name: self.backbone(view) for name, view in views.items()}
        inputs = StepInputs(batch=batch, views=views, student=student, step=self.global_step, epoch=self.current_epoch)
        total = torch.zeros((), device=batch["images"].device)
        terms: dict[str, torch.Tensor] = {}
        metrics: dict[str, torch.Tensor] = {}
        for name, objective in self.objectives.items():
            out = objective(inputs)
            for term, value in out.terms.items():
                total = total + self.objective_weights[name] * value.float()
                terms[f"{name}/{term}"] = value
            for metric, value in out.metrics.items():
                metrics[f"{name}/{metric}"] = value
        return total, {**terms, **metrics}

    # ---- Lightning steps ------------------------------------------------------------------------

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        total, values = self.compute_losses(batch)
        self._track_finite(total, values)
        logs = {f"train/{k}": v.detach() for k, v in values.items()}
        logs["train/loss"] = total.detach()
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=batch["images"].shape[0])
        self.log("train/lr", self.lr_schedulers().get_last_lr()[0], on_step=True, on_epoch=False)
        return total

    def _eval_step(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        total, values = self.compute_losses(batch)
        logs = {f"{stage}/{k}": v for k, v in values.items()}
        logs[f"{stage}/loss"] = total
        self.log_dict(logs, on_step=False, on_epoch=True, sync_dist=True, batch_size=batch["images"].shape[0])

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    # ---- non-finite losses ----------------------------------------------------------------------

    def _track_finite(self, total: torch.Tensor, values: dict[str, torch.Tensor]) -> None:
        names = ["loss"] + list(values)
        stacked = torch.stack([total.detach().float()] + [v.detach().float() for v in values.values()])
        if self._first_bad is None or self._term_names != names:
            self._term_names = names
            self._first_bad = torch.full((len(names),), -1, dtype=torch.long, device=stacked.device)
        bad = ~torch.isfinite(stacked) & (self._first_bad < 0)
        self._first_bad = torch.where(bad, torch.full_like(self._first_bad, self.global_step), self._first_bad)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        last = batch_idx + 1 == self.trainer.num_training_batches
        if last or self.global_step % self.trainer.log_every_n_steps == 0:
            self.check_finite()

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteLossError` naming the objective, term and step of the first NaN/inf."""
        if self._first_bad is None or not bool((self._first_bad >= 0).any()):
            return
        steps = self._first_bad.tolist()
        first = min(s for s in steps if s >= 0)
        culprits = [n for n, s in zip(self._term_names, steps) if s == first and n != "loss"] or ["loss"]
        objective, _, term = culprits[0].partition("/")
        raise NonFiniteLossError(
            f"non-finite loss at step {first}: objective {objective!r}, term {term or 'total'!r}"
            + (f" (also {', '.join(culprits[1:])})" if len(culprits) > 1 else "")
            + "; lower optim.lr, check the objective's weight and parameters, or enable optim.grad_clip"
        )

    # ---- optimisation ---------------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, Any]:
        o = self.config.optim
        skip = {f"backbone.{name}" for name in self.backbone.no_weight_decay()}
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 or name in skip else decay).append(p)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=o.lr, betas=tuple(o.betas), fused=self.device.type == "cuda",
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = partial(warmup_cosine, total=total, warmup=int(o.warmup_fraction * total), start=1.0, end=o.min_lr_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
