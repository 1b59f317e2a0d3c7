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
from ..vit import ViTOutput


@dataclass(frozen=True)
class Needs:
    """What an objective asks the module to compute for it (each computed once per step)."""

    views: tuple[str, ...] = ("clean",)
    teacher: bool = False
    labels: bool = False


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
    """

    batch: dict[str, torch.Tensor]
    views: dict[str, torch.Tensor]
    student: dict[str, ViTOutput]
    teacher: dict[str, ViTOutput] | None = None
    step: int = 0
    epoch: int = 0


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


class Objective(nn.Module):
    """Base class. Subclasses set ``defaults`` (their parameters) and implement ``forward``.

    ``params`` from the config are merged over ``defaults``; an unknown parameter is a
    configuration error, so a typo never silently does nothing.
    """

    defaults: ClassVar[dict[str, Any]] = {}
    requires_labels: ClassVar[bool] = False

    def __init__(self, name: str, config: ObjectiveConfig, context: BuildContext):
        super().__init__()
        self.name = name
        self.config = config
        self.context = context
        self.params = self.check_params(name, config.params)
        self.layers = resolve_layers(config.layers, context.depth, f"objectives.{name}.layers")

    @classmethod
    def check_params(cls, name: str, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(cls.defaults))
        if unknown:
            allowed = ", ".join(sorted(cls.defaults)) or "none"
            raise ConfigError(f"objectives.{name}.params.{unknown[0]}", params[unknown[0]], f"unknown parameter; allowed: {allowed}")
        return {**cls.defaults, **params}

    @property
    def needs(self) -> Needs:
        return Needs(labels=self.requires_labels)

    def forward(self, inputs: StepInputs) -> ObjectiveOutput:  # pragma: no cover - interface
        raise NotImplementedError
