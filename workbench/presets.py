"""Named recipes: a preset is a one-line description and the overrides it applies to the defaults.

Presets set *what is learned* (objectives and their settings); sizes (data, model, epochs) stay at
the defaults, which are chosen to train in minutes on two CPU cores, and are overridden separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import RunConfig
from .errors import ConfigError


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    overrides: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "supervised",
            "Cross-entropy on the last layer's pooled token: the supervised baseline.",
            {"objectives": {"supervised": {"weight": 1.0, "layers": "last"}}},
        ),
    ]
}


def make_config(
    preset: str | None = "supervised",
    overrides: "list[str] | dict[str, Any] | None" = None,
    base: RunConfig | None = None,
    validate: bool = True,
) -> RunConfig:
    """Defaults (or ``base``), then the preset, then the user's overrides; validated.

    >>> make_config("supervised", ["model.depth=4", "trainer.max_epochs=2"]).model.depth
    4
    """
    config = base.copy() if base is not None else RunConfig()
    if preset:
        if preset not in PRESETS:
            raise ConfigError("preset", preset, f"one of {', '.join(PRESETS)}")
        config = config.with_overrides({**PRESETS[preset].overrides, "preset": preset})
    config = config.with_overrides(overrides)
    return config.validate() if validate else config
