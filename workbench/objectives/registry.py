"""Name -> objective class. Adding an objective is one new file and one line here."""

from __future__ import annotations

from ..config import ObjectiveConfig
from ..errors import ConfigError
from .anticollapse import AntiCollapseObjective
from .base import BuildContext, Objective
from .dino import DINOObjective
from .ijepa import IJEPAObjective
from .joint_embedding import BarlowObjective, LeJEPAObjective, SimCLRObjective, ToyKLObjective, VICRegObjective
from .ladder import LatentLadderObjective
from .reconstruction import MAEObjective, PixelLadderObjective, ReconstructionObjective
from .supervised import SupervisedObjective

OBJECTIVES: dict[str, type[Objective]] = {
    # supervised (with layers: all it is deep supervision)
    "supervised": SupervisedObjective,
    # step-wise, on intermediate layers
    "pixel_ladder": PixelLadderObjective,
    "latent_ladder": LatentLadderObjective,
    "anticollapse": AntiCollapseObjective,
    # latent
    "toy_kl": ToyKLObjective,
    "dino": DINOObjective,
    "ijepa": IJEPAObjective,
    "lejepa": LeJEPAObjective,
    "vicreg": VICRegObjective,
    "barlow": BarlowObjective,
    "simclr": SimCLRObjective,
    # data space
    "mae": MAEObjective,
    "recon": ReconstructionObjective,
}


def objective_class(name: str, config: ObjectiveConfig) -> type[Objective]:
    kind = config.kind or name
    if kind not in OBJECTIVES:
        field = f"objectives.{name}.kind" if config.kind else f"objectives.{name}"
        raise ConfigError(field, kind, f"a registered objective: {', '.join(sorted(OBJECTIVES))}")
    return OBJECTIVES[kind]


def build_objective(name: str, config: ObjectiveConfig, context: BuildContext) -> Objective:
    return objective_class(name, config)(name, config, context)
