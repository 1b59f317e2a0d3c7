"""Positive controls at the CPU scale (``python -m workbench bench --controls``), over seeds.

Before a notebook asks a new question of a loss, the instrument must detect what the literature
already established. On ``shapes``, with colour made a nuisance (:data:`~workbench.presets.SHAPES_VIEWS`)
and a ViT of the CPU default size (12,000 images, 4 blocks of width 96, patch 8) trained for
:data:`EPOCHS` epochs:

(a) every joint-embedding preset learns the large object's shape: ``shape`` probed at the last
    layer reaches :data:`SHAPE_TARGET` (the untrained network: about 0.36), each run in at most
    :data:`MAX_RUN_SECONDS` of training with the machine's cores to itself (judged only with
    ``jobs=1``: runs that share the cores take longer than the budget means);
(b) latent-only training (VICReg) removes colour from the last layer: its colour score ends below
    its own untrained network's;
(c) adding reconstruction keeps it: the last layer's colour is above the latent-only run's of the
    same seed, with the whole image decoded from the pooled last layer (``objectives.recon``) and
    with MAE on raw pixels (one row each).

(d), the toy collapsing while DINO, LeJEPA and VICReg do not, is asserted by the test suite
(``tests/test_collapse_phenomenon.py``) at its own size.

Every recipe is trained with the same seeds; each control is a mean over seeds with a 95%
t-interval (paired by seed where two recipes or a run and its untrained network are compared), and
the table says whether it holds. Scores are the diagnostics' factor probes (closed-form ridge) on
held-out images, from each run's final checkpoint and from the same network at initialisation
(:func:`~workbench.analysis.readouts.objective_factors`). The whole set is 21 runs: about 45 minutes
on two CPU cores with two runs at a time. ``--quick`` runs it at toy sizes in a minute or two (a
check that the command works, not a measurement); the test suite asserts (b) and (c) at a small
size in ``tests/test_positive_controls.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..analysis.experiments import Variant, train_variants
from ..analysis.summaries import format_interval, t_interval
from ..presets import SHAPES_VIEWS

EPOCHS = 10
SHAPE_TARGET = 0.70
MAX_RUN_SECONDS = 240.0
JOINT_EMBEDDING = ("vicreg", "barlow", "simclr", "lejepa", "dino")

#: The CPU default's sizes with colour a nuisance, trained for EPOCHS epochs.
SCALE: dict[str, Any] = {
    "data.name": "shapes", "data.shapes.num_images": 12000, "data.probe_size": 1000, "data.batch_size": 128,
    "model.patch_size": 8, "model.width": 96, "model.depth": 4, "model.heads": 4, "optim.lr": 2e-3,
    "trainer.max_epochs": EPOCHS, "diagnostics.enabled": False, **SHAPES_VIEWS,
}
#: Toy sizes for ``--quick`` (seconds a run).
QUICK: dict[str, Any] = {
    **SCALE, "data.shapes.num_images": 600, "data.probe_size": 200, "data.batch_size": 64, "model.width": 32,
    "model.depth": 2, "model.heads": 2, "trainer.max_epochs": 1,
}
#: Reconstruction of the whole image from the pooled last layer, and MAE on raw pixels (per-patch
#: normalised targets would drop each patch's mean colour from what is reconstructed).
RECON = {"objectives.recon.kind": "recon", "objectives.recon.weight": 1.0}
MAE = {"objectives.mae.kind": "mae", "objectives.mae.weight": 1.0, "objectives.mae.params.norm_pix": False}


def variants() -> dict[str, Variant]:
    """Every recipe the controls train: the joint-embedding presets, and VICReg with either
    reconstruction."""
    return {**{name: Variant(name) for name in JOINT_EMBEDDING}, "vicreg+recon": Variant("vicreg", RECON),
            "vicreg+mae": Variant("vicreg", MAE)}


def _scores(runs, objective: str, probe_images: int, cache_dir) -> list[dict[str, float]]:
    """Per run: last-layer shape and colour, trained and untrained, and the run's training seconds."""
    from ..analysis.readouts import objective_factors

    out = []
    for run in runs:
        trained = objective_factors(run, objective, num_images=probe_images, cache_dir=cache_dir)
        initial = objective_factors(run, objective, num_images=probe_images, cache_dir=cache_dir, initial=True)
        out.append({"shape": trained.loc["shape", "last_layer"], "color": trained.loc["color", "last_layer"],
                    "initial_color": initial.loc["color", "last_layer"],
                    "embedding_color_change": trained.loc["color", "embedding"] - initial.loc["color", "embedding"],
                    "seconds": float(run.summary.get("wall_s", float("nan")))})
    return out


def controls(seeds: Sequence[int] = (0, 1, 2), jobs: int = 2, runs_dir: str | Path = "runs/bench",
             data_dir: str | Path = "data", quick: bool = False, probe_images: int = 1000) -> list[dict[str, Any]]:
    """Train every recipe of :func:`variants` once per seed and evaluate the controls.

    Returns one row per control: ``control``, ``recipe``, ``what``, ``target``, the interval
    (``mean``, ``low``, ``high``, ``half_width``, ``sd``, ``n``: :func:`t_interval`), the per-seed
    ``values``, ``holds`` and the slowest run's training ``seconds``. Runs go to
    ``<runs_dir>/controls[-quick]/<recipe>-seed<s>`` and are reused when their config matches.
    """
    scale = QUICK if quick else SCALE
    probe = min(probe_images, int(scale["data.probe_size"]))
    recipes = variants()
    runs = train_variants(recipes, notebook="controls-quick" if quick else "controls", common=scale,
                          runs_dir=runs_dir, cache_dir=data_dir, seeds=list(seeds), jobs=jobs, verbose=False)
    # every preset here has one joint-embedding objective, named after the preset
    return evaluate({label: _scores(label_runs, recipes[label].preset, probe, data_dir)
                     for label, label_runs in runs.items()}, judge_time=jobs == 1)


def evaluate(scores: Mapping[str, Sequence[Mapping[str, float]]], judge_time: bool = True) -> list[dict[str, Any]]:
    """The controls' rows from per-run scores: ``recipe -> [one dict per seed, in the same seed order
    for every recipe]`` with ``shape``, ``color`` and ``initial_color`` (last layer),
    ``embedding_color_change`` (projector output, trained minus untrained) and ``seconds``.

    ``judge_time=False`` (runs that shared the cores) leaves the time budget of (a) unjudged: the
    row's ``in_time`` is ``None`` and only the shape target decides ``holds``."""
    rows = []

    def row(control, recipe, what, target, values, holds, seconds, in_time=None):
        interval = t_interval(values)
        rows.append({"control": control, "recipe": recipe, "what": what, "target": target, **interval,
                     "values": [round(float(v), 4) for v in values],
                     "holds": bool(holds(interval) and in_time is not False), "in_time": in_time,
                     "seconds": max(seconds)})

    for name in JOINT_EMBEDDING:
        runs = scores[name]
        seconds = [r["seconds"] for r in runs]
        row("a", name, "shape at the last layer", f">= {SHAPE_TARGET}, each run <= {MAX_RUN_SECONDS:.0f} s",
            [r["shape"] for r in runs], lambda i: i["mean"] >= SHAPE_TARGET, seconds,
            in_time=max(seconds) <= MAX_RUN_SECONDS if judge_time else None)
    alone = scores["vicreg"]
    seconds = [r["seconds"] for r in alone]
    row("b", "vicreg", "colour at the last layer minus the untrained network's", "interval < 0",
        [r["color"] - r["initial_color"] for r in alone], lambda i: i["high"] < 0, seconds)
    row("b'", "vicreg", "colour at the projector output minus the untrained network's", "interval < 0",
        [r["embedding_color_change"] for r in alone], lambda i: i["high"] < 0, seconds)
    for recipe in ("vicreg+recon", "vicreg+mae"):
        row("c", recipe, "colour at the last layer minus vicreg's (same seed)", "interval > 0",
            [a["color"] - b["color"] for a, b in zip(scores[recipe], alone)], lambda i: i["low"] > 0,
            [r["seconds"] for r in scores[recipe]])
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The controls as a markdown table, one row each."""
    lines = ["| control | recipe | measured | target | mean [95% interval] | per seed | holds | slowest run (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        seeds = ", ".join(f"{v:.3f}" for v in r["values"])
        shared = " (cores shared: time not judged)" if r["control"] == "a" and r.get("in_time") is None else ""
        lines.append(f"| {r['control']} | {r['recipe']} | {r['what']} | {r['target']} | {format_interval(r)} | "
                     f"{seeds} | {'yes' if r['holds'] else 'no'} | {r['seconds']:.0f}{shared} |")
    return "\n".join(lines)


def main(seeds: Sequence[int] = (0, 1, 2), jobs: int = 2, quick: bool = False, out: str | None = None,
         runs_dir: str | Path = "runs/bench", data_dir: str | Path = "data") -> int:
    """Print the controls' table (and write it to ``out``: JSON for a ``.json`` path); 0 when every
    control holds, 1 otherwise (always 0 with ``quick``, whose sizes are not a measurement)."""
    from ..atomic import atomic_write_text

    start = time.perf_counter()
    rows = controls(seeds=seeds, jobs=jobs, runs_dir=runs_dir, data_dir=data_dir, quick=quick)
    text = markdown(rows) + f"\n\n{len(seeds)} seeds, {jobs} runs at a time, {time.perf_counter() - start:.0f} s in all"
    print(text)
    if out:
        atomic_write_text(out, json.dumps(rows, indent=1) if str(out).endswith(".json") else text + "\n")
    return 0 if quick or all(r["holds"] for r in rows) else 1
