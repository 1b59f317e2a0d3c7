"""Objectives: what each training signal reads from the shared backbone outputs, and its loss terms.

One file per family (supervised, joint-embedding, DINO, I-JEPA, the ladders, reconstruction,
anti-collapse), each an ``nn.Module`` that declares what it needs (:class:`~.base.Needs`: views,
the teacher, a masked forward), owns its heads, and returns named loss terms computed by the
modules of :mod:`workbench.losses`; :mod:`.base` holds the interface and :mod:`.registry` the names.
Adding an objective is one file plus one registry line (``docs/extending.md``). May import the
core (config, errors, schedules, models, views, masks, losses, distributed, diagnostics' metrics);
training imports this package, never the other way round."""

from .base import BuildContext, Needs, Objective, ObjectiveOutput, StepInputs, resolve_layers
from .registry import OBJECTIVES, build_objective, objective_class

__all__ = [
    "BuildContext", "Needs", "Objective", "ObjectiveOutput", "StepInputs", "resolve_layers",
    "OBJECTIVES", "build_objective", "objective_class",
]
