"""The LightningModule: one straight path from a batch to the weighted sum of objectives.

    batch (uint8 images on device) -> views -> one backbone forward per view
      -> each enabled objective reads the shared outputs -> loss terms -> weighted sum -> logs

Objectives never run the backbone themselves, so adding one never adds a forward pass that another
objective already paid for.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from ..config import RunConfig
from ..data.datamodule import DataInfo
from ..diagnostics.spectral import rankme, std_of_normalized
from ..errors import NonFiniteLossError
from ..models.teacher import EMATeacher
from ..models.vit import VisionTransformer, ViTOutput
from ..objectives import BuildContext, StepInputs, build_objective
from ..schedules import Adaptive, build_schedule
from ..views import config_multi_crop
from .optim import build_optimiser

# The unmasked student views the training monitors read, in order of preference.
MONITORED_VIEWS = ("clean", "global", "local")


def build_backbone(config: RunConfig, info: DataInfo) -> VisionTransformer:
    m = config.model
    return VisionTransformer(
        image_size=info.image_size, patch_size=m.patch_size, in_channels=info.channels, width=m.width,
        depth=m.depth, heads=m.heads, mlp_ratio=m.mlp_ratio, pool=m.pool, registers=m.registers,
        drop_path=m.drop_path, qkv_bias=m.qkv_bias, gradient_isolation=m.gradient_isolation,
    )


def backbone_context(backbone: VisionTransformer, num_classes: int) -> BuildContext:
    """What an objective is built against: the sizes of ``backbone`` and the data's class count."""
    b = backbone
    return BuildContext(width=b.width, depth=b.depth, patch_size=b.patch_size, grid=b.grid, channels=b.in_channels,
                        image_size=b.image_size, num_prefix=b.num_prefix, num_classes=num_classes, pool=b.pool)


def step_generator(seed: int, stage: str, index: int, rank: int = -1,
                   device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of step ``index`` of ``stage`` (``train``, ``val``, ``test``) for a run seeded
    ``seed``, on ``device``: see :meth:`WorkbenchModule.generator`."""
    offset = {"train": 0, "val": 1, "test": 2}.get(stage, 3)
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + offset * 100_003 + index + (rank + 1) * 7_919_993)


def initial_module(config: RunConfig | dict, data_info: DataInfo | dict) -> "WorkbenchModule":
    """The module :func:`~workbench.training.fit.fit` starts from: built right after seeding every
    generator with ``config.seed``, so the same config gives the same initial weights (the
    untrained network a run's diagnostics measure at epoch 0)."""
    seed = config.seed if isinstance(config, RunConfig) else RunConfig.from_dict(config).seed
    L.seed_everything(seed, verbose=False)
    return WorkbenchModule(config, data_info)


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
        context = backbone_context(self.backbone, self.data_info.num_classes)
        active = self.config.active_objectives()
        self.objectives = nn.ModuleDict({name: build_objective(name, cfg, context) for name, cfg in active.items()})
        self.weight_schedules = {name: build_schedule(cfg.weight, f"objectives.{name}.weight") for name, cfg in active.items()}
        needs = {name: o.needs for name, o in self.objectives.items()}
        self.student_views = sorted({v for n in needs.values() for v in n.views})
        self.teacher_views = sorted({v for n in needs.values() for v in n.teacher_views})
        self.masked = {name: n.masked for name, n in needs.items() if n.masked}
        self.view_names = sorted(set(self.student_views) | set(self.teacher_views) | set(self.masked.values()))
        # One EMA teacher for every objective that reads it; built before compilation.
        self.teacher = EMATeacher(self.backbone) if self.teacher_views else None
        self.momentum = build_schedule(self.config.teacher.momentum, "teacher.momentum")

        c = self.data_info.channels
        self.register_buffer("pixel_mean", torch.tensor(self.data_info.mean).view(1, c, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(self.data_info.std).view(1, c, 1, 1), persistent=False)
        if self.config.trainer.compile:
            self.backbone.compile()
        self.total_steps = 1
        # First step at which each loss term became non-finite (-1: never); kept on the device so
        # the check costs no host synchronisation until the logging interval.
        self._term_names: list[str] = []
        self._first_bad: torch.Tensor | None = None
        self._last_values: dict[str, torch.Tensor] = {}

    # ---- the data path --------------------------------------------------------------------------

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or float in [0, 1]) images -> standardised with the training set's channel statistics."""
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images
        return (x - self.pixel_mean) / self.pixel_std

    def generator(self, stage: str, index: int, rank: int = -1) -> torch.Generator:
        """Randomness of one step from (seed, stage, step, rank): reproducible and exact after a
        resume. ``rank=-1`` gives the stream shared by every rank (SIGReg's directions); a rank's
        own stream draws its samples' crops and masks."""
        return step_generator(self.config.seed, stage, index, rank, self.device)

    def make_views(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Every view some objective asked for, made once, on the batch's device."""
        x = batch["images"].float() / 255.0
        views: dict[str, torch.Tensor] = {}
        if "clean" in self.view_names:
            views["clean"] = self.normalise(x)
        wants_local = "local" in self.view_names
        if "global" in self.view_names or wants_local:
            global_views, local_views = config_multi_crop(x, generator, self.config.views, self.backbone.patch_size,
                                                          local=wants_local)
            views["global"] = self.normalise(torch.cat(global_views))
            if local_views:
                views["local"] = self.normalise(torch.cat(local_views))
        return views

    def forward(self, images: torch.Tensor) -> ViTOutput:
        """Backbone output for uint8 images (what diagnostics and notebooks call)."""
        return self.backbone(self.normalise(images))

    def compute_losses(
        self, batch: dict[str, torch.Tensor], stage: str = "train", index: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Total weighted loss, every loss term and every metric, keyed ``<objective>/<name>``.

        One student forward per view (crops of one kind are concatenated into one batch), one
        masked forward per objective that asks for one, one teacher forward per teacher view.
        """
        step = self.global_step if stage == "train" else index
        every = self.config.diagnostics.monitor_every_n_steps
        # Monitors (an SVD, which synchronises on CUDA) run only on monitor steps whose logs are
        # written: on any other step their values would be computed and then dropped.
        monitor = stage != "train" or (every > 0 and (self.global_step + 1) % every == 0 and self.writes_logs())
        sample_generator = self.generator(stage, step, rank=self.global_rank)
        views = self.make_views(batch, sample_generator)
        inputs = StepInputs(batch=batch, views=views, student={}, step=self.global_step,
                            total_steps=self.total_steps, epoch=self.current_epoch,
                            generator=self.generator(stage, step), sample_generator=sample_generator,
                            monitor=monitor)
        for view in self.student_views:
            if view in views:
                inputs.student[view] = self.backbone(views[view])
        for name, source in self.masked.items():
            mask = self.objectives[name].make_mask(batch["images"].shape[0], inputs)
            inputs.masks[name] = mask
            inputs.student[f"masked:{name}"] = self.backbone(views[source], keep=mask.keep)
        if self.teacher is not None:
            inputs.teacher = {view: self.teacher(views[view]) for view in self.teacher_views}

        total = torch.zeros((), device=batch["images"].device)
        values: dict[str, torch.Tensor] = {}
        metrics: dict[str, torch.Tensor] = {}
        for name, objective in self.objectives.items():
            out = objective(inputs)
            weight = self.weight_schedules[name].value(self.global_step, self.total_steps)
            for term, value in out.terms.items():
                total = total + weight * value.float()
                values[f"{name}/{term}"] = value
            for metric, value in out.metrics.items():
                metrics[f"{name}/{metric}"] = value
        monitored = next((v for v in MONITORED_VIEWS if v in inputs.student), None)
        if stage == "train" and monitor and monitored is not None:
            # Cheap collapse monitors on the training batch, from an output already computed: the
            # first whole-image view the objectives asked for (a run whose objectives only see masked
            # forwards, I-JEPA alone, logs none: a forward of part of the patches is no monitor).
            out = inputs.student[monitored]
            z = out.pooled(out.depth, self.backbone.pool).detach().float()
            metrics["monitor/rankme"] = rankme(z)
            metrics["monitor/std_l2"] = std_of_normalized(z)
        return total, values, metrics

    # ---- Lightning steps ------------------------------------------------------------------------

    def on_fit_start(self) -> None:
        self.total_steps = max(1, int(self.trainer.estimated_stepping_batches))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        total, values, metrics = self.compute_losses(batch, "train")
        self._track_finite(total, values)
        self._last_values = values
        if self.writes_logs():
            # Only steps whose logs are written pay for self.log (Python work per key); the values
            # stay on the device until Lightning's logger reads them at this step.
            logs = {f"train/{k}": v.detach() for k, v in {**values, **metrics}.items()}
            logs["train/loss"] = total.detach()
            self.log_dict(logs, on_step=True, on_epoch=False, batch_size=batch["images"].shape[0])
            self.log_dict(self.current_hyperparameters(), on_step=True, on_epoch=False)
        return total

    def writes_logs(self) -> bool:
        """True on training steps whose logs Lightning writes: step k (0-based) when k + 1 is a
        multiple of ``trainer.log_every_n_steps`` (Lightning's own rule, without gradient
        accumulation), or when the trainer is stopping. Always True outside a trainer."""
        trainer = self._trainer
        if trainer is None:
            return True
        every = trainer.log_every_n_steps
        return every > 0 and ((self.global_step + 1) % every == 0 or trainer.should_stop)

    def current_hyperparameters(self) -> dict[str, float]:
        """Learning rate, EMA momentum and every scheduled weight / parameter at this step (floats
        computed on the host; ``self.log`` copies each to the device, which is why they are logged
        on logging steps only)."""
        step, total = self.global_step, self.total_steps
        hp = {"train/lr": self.lr_schedulers().get_last_lr()[0]}
        if self.teacher is not None:
            hp["train/teacher/momentum"] = self.momentum.value(step, total)
        for name, objective in self.objectives.items():
            if not isinstance(self.config.objectives[name].weight, (int, float)):
                hp[f"train/{name}/weight"] = self.weight_schedules[name].value(step, total)
            for param, schedule in objective.schedules.items():
                hp[f"train/{name}/{param}"] = float(schedule.value(step, total))
        return hp

    def all_schedules(self) -> dict[str, object]:
        out = {"teacher.momentum": self.momentum}
        out.update({f"objectives.{n}.weight": s for n, s in self.weight_schedules.items()})
        for name, objective in self.objectives.items():
            out.update({f"objectives.{name}.params.{p}": s for p, s in objective.schedules.items()})
        return out

    def _eval_step(self, batch: dict[str, torch.Tensor], stage: str, batch_idx: int = 0) -> None:
        total, values, metrics = self.compute_losses(batch, stage, batch_idx)
        logs = {f"{stage}/{k}": v for k, v in {**values, **metrics}.items()}
        logs[f"{stage}/loss"] = total
        self.log_dict(logs, on_step=False, on_epoch=True, sync_dist=True, batch_size=batch["images"].shape[0])

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val", batch_idx)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test", batch_idx)

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
        momentum = self.momentum.value(self.global_step, self.total_steps)
        if self.teacher is not None:
            self.teacher.update(self.backbone, momentum)
        for objective in self.objectives.values():
            objective.ema_update(momentum)
        last = batch_idx + 1 == self.trainer.num_training_batches
        if last or self.global_step % self.trainer.log_every_n_steps == 0:
            self.check_finite()
            self._observe_adaptive()

    def _observe_adaptive(self) -> None:
        """Feed adaptive schedules the latest losses: one host transfer, at logging intervals only."""
        schedules = [s for s in self.all_schedules().values() if isinstance(s, Adaptive)]
        if schedules and self._last_values:
            names = list(self._last_values)
            floats = torch.stack([self._last_values[n].detach().float() for n in names]).tolist()
            metrics = dict(zip(names, floats))
            for schedule in schedules:
                schedule.observe(self.global_step, metrics)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["schedules"] = {k: s.state_dict() for k, s in self.all_schedules().items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for key, schedule in self.all_schedules().items():
            if key in checkpoint.get("schedules", {}):
                schedule.load_state_dict(checkpoint["schedules"][key])

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteLossError` naming the objective, term and step of the first NaN/inf.

        Reads the per-term record from the device (one transfer): call it at logging intervals."""
        if self._first_bad is None:
            return
        steps = self._first_bad.tolist()
        if max(steps) < 0:
            return
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
        optimizer, scheduler = build_optimiser(
            self.config.optim, self.named_parameters(), {f"backbone.{n}" for n in self.backbone.no_weight_decay()},
            self.trainer.estimated_stepping_batches, self.device,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
