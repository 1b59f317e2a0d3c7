"""The objective interface: what every loss declares, receives and returns.

An objective is an ``nn.Module`` that owns its heads (linear probes, decoders, projectors) but never
runs the backbone. The module runs the backbone once per view and hands every objective the same
:class:`StepInputs`; an objective reads the layers it targets and returns named loss terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import ObjectiveConfig
from ..errors import ConfigError
from ..models.vit import ViTOutput
from ..schedules import check_range, schedule_fields

@dataclass(frozen=True)
class Needs:
    """What an objective asks the module to compute for it (each computed once per step).

    views:         student forwards over these views: ``clean`` (the un-augmented batch),
                   ``global`` (``views.global_crops`` crops, concatenated along the batch) and
                   ``local`` (``views.local_crops`` smaller crops, concatenated).
    teacher_views: EMA-teacher forwards (no gradient) over these views.
    masked:        a view name when the objective needs a student forward of that view with part of
                   the patches removed; the mask comes from :meth:`Objective.make_mask`.
    """

    views: tuple[str, ...] = ("clean",)
    teacher_views: tuple[str, ...] = ()
    masked: str | None = None


@dataclass
class Mask:
    """Which patches a masked forward keeps, and which it must predict.

    keep:    B x K indices of the visible patches (what the student sees)
    targets: B x Q (or B x T x Q for several target blocks) indices of the patches to predict
    hidden:  B x N bool, True where a patch is hidden (None when the objective does not need it)
    """

    keep: torch.Tensor
    targets: torch.Tensor
    hidden: torch.Tensor | None = None


@dataclass(frozen=True)
class BuildContext:
    """Sizes an objective needs to build its heads."""

    width: int
    depth: int
    patch_size: int
    grid: int
    channels: int
    image_size: int
    num_prefix: int
    num_classes: int
    pool: str = "cls"


@dataclass
class StepInputs:
    """Shared outputs of one step, read by every objective.

    batch:   the raw batch (``images`` uint8, ``labels``, ``factors``, ``index``)
    views:   normalised float images per view name
    student: backbone output per view name
    teacher: EMA-teacher output per view name (only when some objective needs it)
    step, epoch: the global optimisation step and the epoch
    generator: randomness that must agree across ranks; sample_generator: randomness per sample
    """

    batch: dict[str, torch.Tensor]
    views: dict[str, torch.Tensor]
    student: dict[str, ViTOutput]
    teacher: dict[str, ViTOutput] = field(default_factory=dict)
    masks: dict[str, Mask] = field(default_factory=dict)
    step: int = 0
    total_steps: int = 1
    epoch: int = 0
    generator: torch.Generator | None = None  # identical on every rank (e.g. SIGReg's directions)
    sample_generator: torch.Generator | None = None  # this rank's per-sample randomness (crops, masks)
    monitor: bool = True  # compute monitoring metrics (an SVD, ...) this step; False between intervals

    def chunks(self, view: str) -> int:
        """How many copies of the batch a view holds (global / local crops are concatenated)."""
        return self.views[view].shape[0] // self.batch["images"].shape[0]


@dataclass
class ObjectiveOutput:
    """Loss terms (summed, then weighted, into the total) and metrics (logged only)."""

    terms: dict[str, torch.Tensor]
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


def resolve_layers(spec: str | list[int], depth: int, field_name: str = "layers") -> list[int]:
    """``"last"`` -> [depth]; ``"all"`` -> [1..depth]; a list is checked against 0..depth.

    Layer 0 (the patch embedding) is not in ``"all"``: its CLS token is still the learned
    constant, so a read-out there carries no information about the image.
    """
    if spec == "last":
        return [depth]
    if spec == "all":
        return list(range(1, depth + 1))
    if isinstance(spec, str):
        raise ConfigError(field_name, spec, "'last', 'all' or a list of layer indices")
    layers = [int(i) for i in spec]
    if not layers:
        raise ConfigError(field_name, spec, f"at least one layer index in 0..{depth}")
    bad = [i for i in layers if not 0 <= i <= depth]
    if bad:
        raise ConfigError(field_name, spec, f"layer indices in 0..{depth} (model.depth={depth}); {bad} out of range")
    if len(set(layers)) != len(layers):
        raise ConfigError(field_name, spec, "distinct layer indices")
    return sorted(layers)


def check_mask_ratio(name: str, spec: Any) -> None:
    """A mask ratio (or a schedule of one) must stay in [0, 1): at least one patch stays visible."""
    check_range(spec, f"objectives.{name}.params.mask_ratio", lambda r: 0.0 <= r < 1.0,
                "a fraction of the patches to hide in [0, 1) (0 hides none; 1 would hide them all)")


class Objective(nn.Module):
    """Base class. Subclasses set ``defaults`` (their parameters) and implement ``forward``.

    ``params`` from the config are merged over ``defaults``; an unknown parameter is a
    configuration error, so a typo never silently does nothing. Any numeric parameter may be a
    schedule spec: read it with :meth:`hp`, which returns its value at the current step.
    """

    defaults: ClassVar[dict[str, Any]] = {}
    schedulable: ClassVar[frozenset[str]] = frozenset()  # params read at every step through hp()

    def __init__(self, name: str, config: ObjectiveConfig, context: BuildContext):
        super().__init__()
        self.name = name
        self.config = config
        self.context = context
        self.params = self.check_params(name, config.params)
        self.layers = resolve_layers(config.layers, context.depth, f"objectives.{name}.layers")
        self.schedules = schedule_fields(self.params, f"objectives.{name}.params")
        fixed = sorted(set(self.schedules) - self.schedulable)
        if fixed:
            allowed = ", ".join(sorted(self.schedulable)) or "none"
            raise ConfigError(f"objectives.{name}.params.{fixed[0]}", self.params[fixed[0]],
                              f"a number: this parameter is fixed at build time (schedulable: {allowed})")

    def hp(self, name: str, inputs: "StepInputs") -> Any:
        """The current value of parameter ``name`` (scheduled parameters follow their schedule)."""
        if name in self.schedules:
            return self.schedules[name].value(inputs.step, inputs.total_steps)
        return self.params[name]

    def make_mask(self, batch_size: int, inputs: "StepInputs") -> Mask:  # pragma: no cover - interface
        """The mask for the ``masked`` forward (objectives whose needs name a masked view)."""
        raise NotImplementedError

    def ema_update(self, momentum: float) -> None:
        """Update EMA copies of the objective's own heads (DINO's teacher head); default: none."""

    @classmethod
    def check_params(cls, name: str, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(cls.defaults))
        if unknown:
            allowed = ", ".join(sorted(cls.defaults)) or "none"
            raise ConfigError(f"objectives.{name}.params.{unknown[0]}", params[unknown[0]], f"unknown parameter; allowed: {allowed}")
        return {**cls.defaults, **params}

    @property
    def needs(self) -> Needs:
        return Needs()

    def forward(self, inputs: StepInputs) -> ObjectiveOutput:  # pragma: no cover - interface
        raise NotImplementedError
