"""Objectives: one file per family, each an ``nn.Module``; see :mod:`.base` for the interface."""

from .base import BuildContext, Needs, Objective, ObjectiveOutput, StepInputs, resolve_layers
from .registry import OBJECTIVES, build_objective, objective_class

__all__ = [
    "BuildContext", "Needs", "Objective", "ObjectiveOutput", "StepInputs", "resolve_layers",
    "OBJECTIVES", "build_objective", "objective_class",
]
