"""Name -> objective class. Adding an objective is one new file and one line here."""

from __future__ import annotations

from .base import BuildContext, Objective
from .supervised import SupervisedObjective
from ..config import ObjectiveConfig
from ..errors import ConfigError

OBJECTIVES: dict[str, type[Objective]] = {
    "supervised": SupervisedObjective,
}


def objective_class(name: str, config: ObjectiveConfig) -> type[Objective]:
    kind = config.kind or name
    if kind not in OBJECTIVES:
        field = f"objectives.{name}.kind" if config.kind else f"objectives.{name}"
        raise ConfigError(field, kind, f"a registered objective: {', '.join(sorted(OBJECTIVES))}")
    return OBJECTIVES[kind]


def build_objective(name: str, config: ObjectiveConfig, context: BuildContext) -> Objective:
    return objective_class(name, config)(name, config, context)
