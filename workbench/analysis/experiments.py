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
from typing import Any, Mapping, Sequence

from ..atomic import atomic_write_text
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
    seeds: Sequence[int] | None = None,
    jobs: int = 1,
) -> dict[str, Run] | dict[str, list[Run]]:
    """Train every variant (in order) into ``<runs_dir>/<notebook>/<label>`` and return the runs by label.

    ``variants`` maps a label (the run directory's name) to a :class:`Variant`, a ``(preset,
    overrides)`` pair or a bare preset name. ``common`` overrides apply to every variant first, so a
    variant's own overrides win. Every config is validated before the first run starts, so a typo
    in the last variant does not cost the time of the first ones.

    With ``seeds`` (a list of distinct integers), every variant is trained once per seed, into
    ``<label>-seed<s>`` with ``seed=<s>`` -- the same seeds for every variant, so that differences
    between variants can be paired seed by seed -- and each label maps to its runs in the order of
    ``seeds``. ``jobs > 1`` trains that many runs at once, each in its own ``python -m workbench
    fit`` process with the CPU cores shared between them (as :mod:`workbench.training.sweep` does);
    a run that fails there raises :class:`~workbench.training.sweep.SweepError` with the last lines
    of its log, after the others finished.

    With ``reuse`` (the default) a completed run whose config matches is returned as it is; a run
    directory under the same label that does not match, or did not complete, is deleted and trained
    again. Reuse compares configs, not code: after changing the library itself, pass
    ``reuse=False`` to retrain.
    """
    if not variants:
        raise ConfigError("variants", dict(variants), "at least one label -> Variant(preset, overrides)")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError("jobs", jobs, "an integer >= 1 (runs trained at once)")
    if seeds is not None:
        seeds = list(seeds)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds) or len(set(seeds)) != len(seeds):
            raise ConfigError("seeds", seeds, "a non-empty list of distinct integers, e.g. [0, 1, 2]")
    per_seed = [None] if seeds is None else seeds
    configs: dict[tuple[str, int | None], RunConfig] = {}
    for label, v in variants.items():
        variant = _as_variant(label, v)
        _check_label(label)
        for seed in per_seed:
            name = label if seed is None else f"{label}-seed{seed}"
            shared = dict(common or {}) if seed is None else {**dict(common or {}), "seed": seed}
            configs[(label, seed)] = variant_config(name, variant, shared, runs_dir, notebook)

    done: dict[tuple[str, int | None], Run] = {}
    todo: list[tuple[tuple[str, int | None], RunConfig]] = []
    for key, config in configs.items():
        path = Path(config.runs_dir) / config.name
        if reuse and _reusable(path, config):
            if verbose:
                print(f"{config.name}: reusing the completed run in {path}")
            done[key] = Run(path)
            continue
        if path.exists():
            _remove_run_dir(path)
        todo.append((key, config))
    if jobs == 1:
        from ..training.fit import (
            fit,  # late: importing Lightning is slow, and this module is cheap to import otherwise
        )

        for key, config in todo:
            path = Path(config.runs_dir) / config.name
            if verbose:
                print(f"{config.name}: training {config.preset} into {path}", flush=True)
            run = fit(config, cache_dir=cache_dir)
            if verbose:
                print(f"{config.name}: {run.summary.get('status')} in {run.summary.get('wall_s', float('nan')):.0f} s")
            done[key] = run
    elif todo:
        # Seed by seed (every variant's first seed, then every second seed, ...): the variants differ
        # in cost and the seeds of one variant do not, so this order keeps every process slot busy
        # until the end instead of leaving the costliest variant's last seed to run alone.
        todo.sort(key=lambda item: per_seed.index(item[0][1]))
        done.update(_train_in_processes(todo, notebook_dir(notebook, runs_dir) if notebook else Path(runs_dir),
                                        cache_dir, jobs, verbose))
    if seeds is None:
        return {label: done[(label, None)] for label in variants}
    return {label: [done[(label, seed)] for seed in seeds] for label in variants}


def _train_in_processes(todo: list, root: Path, cache_dir: str | Path | None, jobs: int, verbose: bool) -> dict:
    """Train each ``(key, config)`` with ``python -m workbench fit --config``, ``jobs`` at a time;
    the configs and the logs go to ``<root>/logs``."""
    from ..training.sweep import Job, SweepError, failure_report, run_jobs

    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    planned = []
    for index, (_, config) in enumerate(todo):
        config_path = logs / f"{config.name}.yaml"
        atomic_write_text(config_path, config.to_yaml())
        args = ["fit", "--config", str(config_path)]
        if cache_dir is not None:
            args += ["--data-dir", str(cache_dir)]
        planned.append(Job(index, config.preset or "", config.seed, config.name, tuple(args)))
    runs, failures = run_jobs(root, planned, jobs, echo=print if verbose else (lambda *_: None))
    if failures:
        raise SweepError(failure_report(failures, len(planned)), runs, failures)
    by_name = {run.path.name: run for run in runs}
    return {key: by_name[config.name] for key, config in todo}


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
