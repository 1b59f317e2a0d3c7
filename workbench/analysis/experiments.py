"""Train a few named variants of a recipe side by side: what a notebook of the series does.

A notebook compares runs that differ in one thing (the objective, a direction, a switch) and share
everything else (data, model size, steps, seed). :func:`train_variants` takes the shared settings
once and one ``(preset, overrides)`` pair per variant, and trains each into
``<runs_dir>/<notebook>/<label>``::

    runs = train_variants(
        {"end-to-end": Variant("supervised"),
         "greedy": Variant("local-greedy")},
        notebook="01_stepwise_construction",
        common={"trainer.max_epochs": 4, "model.depth": 4},
        runs_dir="../runs",
    )
    runs["greedy"].diagnostics

Executing a notebook twice with the same parameters should not train twice, and executing it with
new parameters must not show stale runs. So a completed run whose saved config equals the one
requested is reused, and any other run directory under that name (different config, failed or
interrupted) is replaced.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..config import PLACEMENT_FIELDS, RunConfig, changed_fields
from ..errors import ConfigError
from ..presets import make_config
from ..runs import Run
from ..validation import RUN_NAME
from .headline import notebook_dir


@dataclass(frozen=True)
class Variant:
    """One run of a comparison: a preset and the overrides that make it this variant."""

    preset: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


def variant_config(
    label: str, variant: Variant, common: Mapping[str, Any] | None = None, runs_dir: str | Path = "runs",
    notebook: str = "",
) -> RunConfig:
    """The validated config of one variant: defaults, then the preset, then ``common``, then the
    variant's own overrides; named ``label`` and placed under ``<runs_dir>/<notebook>``."""
    _check_label(label)
    where = notebook_dir(notebook, runs_dir) if notebook else Path(runs_dir)
    overrides = {**dict(common or {}), **dict(variant.overrides), "runs_dir": str(where)}
    # Validated without its name: validation refuses a name whose directory exists, and here an
    # existing directory is expected (a run to reuse or to replace).
    config = make_config(variant.preset, {**overrides, "name": ""})
    config.name = label
    return config


def same_experiment(a: RunConfig, b: RunConfig) -> bool:
    """Whether two configs train the same thing (they may differ in name, place and progress bar)."""
    return not changed_fields(a, b, ignore=PLACEMENT_FIELDS)


def train_variants(
    variants: Mapping[str, Variant | tuple[str, Mapping[str, Any]] | str],
    *,
    notebook: str,
    common: Mapping[str, Any] | None = None,
    runs_dir: str | Path = "runs",
    cache_dir: str | Path | None = "data",
    reuse: bool = True,
    verbose: bool = True,
) -> dict[str, Run]:
    """Train every variant (in order) into ``<runs_dir>/<notebook>/<label>`` and return the runs by label.

    ``variants`` maps a label (the run directory's name) to a :class:`Variant`, a ``(preset,
    overrides)`` pair or a bare preset name. ``common`` overrides apply to every variant first, so a
    variant's own overrides win. Every config is validated before the first run starts, so a typo
    in the last variant does not cost the time of the first ones.

    With ``reuse`` (the default) a completed run whose config matches is returned as it is; a run
    directory under the same label that does not match, or did not complete, is deleted and trained
    again. Reuse compares configs, not code: after changing the library itself, pass
    ``reuse=False`` to retrain.
    """
    if not variants:
        raise ConfigError("variants", dict(variants), "at least one label -> Variant(preset, overrides)")
    configs = {label: variant_config(label, _as_variant(label, v), common, runs_dir, notebook)
               for label, v in variants.items()}
    from ..training.fit import fit  # late: importing Lightning is slow, and this module is cheap to import otherwise

    runs: dict[str, Run] = {}
    for label, config in configs.items():
        path = Path(config.runs_dir) / label
        if reuse and _reusable(path, config):
            if verbose:
                print(f"{label}: reusing the completed run in {path}")
            runs[label] = Run(path)
            continue
        if path.exists():
            _remove_run_dir(path)
        if verbose:
            print(f"{label}: training {config.preset} into {path}", flush=True)
        run = fit(config, cache_dir=cache_dir)
        if verbose:
            print(f"{label}: {run.summary.get('status')} in {run.summary.get('wall_s', float('nan')):.0f} s")
        runs[label] = run
    return runs


def _as_variant(label: str, value: Variant | tuple | str) -> Variant:
    if isinstance(value, Variant):
        return value
    if isinstance(value, str):
        return Variant(value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return Variant(value[0], dict(value[1] or {}))
    raise ConfigError(f"variants[{label!r}]", value, "Variant(preset, overrides), (preset, overrides) or a preset name")


def _check_label(label: str) -> None:
    if not isinstance(label, str) or not RUN_NAME.match(label):
        raise ConfigError("variant label", label, "a run name: letters, digits and _ . = + - (no slashes or spaces)")


def _reusable(path: Path, config: RunConfig) -> bool:
    run = Run(path)
    if not (path / "config.yaml").is_file() or run.summary.get("status") != "completed":
        return False
    try:
        return same_experiment(run.config, config)
    except ConfigError:  # a config written by an older version that no longer validates
        return False


def _remove_run_dir(path: Path) -> None:
    # Only ever delete what is recognisably a run directory: a label that collides with some other
    # folder is the user's to sort out.
    if not (path / "config.yaml").is_file() and any(path.iterdir()):
        raise FileExistsError(f"{path} exists and is not a run directory (no config.yaml); "
                              "move it away or pick another label")
    shutil.rmtree(path)
