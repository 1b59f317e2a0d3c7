"""Several runs on one figure: a logged curve across runs, and a diagnostic across layers.

Runs whose configs differ only by the seed (and the name and runs directory) are one experiment
repeated: they are drawn as their mean with a +- one standard deviation band, so that a difference
between objectives can be told apart from seed noise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from ..config import experiment_fields
from ..errors import ConfigError
from ..runs import Run
from .common import FigureDataError, as_runs, diagnostics_table, select, with_alpha


def _experiment_key(run: Run) -> str:
    """The run's config without its name, place, progress bar and seed (a run with an unreadable
    config is an experiment of its own)."""
    try:
        fields = experiment_fields(run.config)
    except Exception:
        return f"unreadable:{run.path}"
    return json.dumps(fields, sort_keys=True, default=str)


def _seed(run: Run) -> str:
    try:
        return str(run.config.seed)
    except Exception:
        return "?"


def group_by_seed(runs: Sequence[Run]) -> list[tuple[str, list[Run]]]:
    """Runs grouped into experiments (same config but for the seed), in order of first appearance,
    each with a label: the group's common name prefix, else its preset, else its first run's name,
    whichever tells every group apart; ``(n seeds)`` is appended to groups of several runs (``(n runs)``
    when some share a seed)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(_experiment_key(run), []).append(run)
    members = list(groups.values())

    def prefix(group: list[Run]) -> str:
        if len(group) == 1:
            return group[0].name
        common = os.path.commonprefix([r.name for r in group]).rstrip("-_=. ")
        for tail in ("seed", "s"):  # "lejepa-seed" or "lejepa-s" from lejepa-seed0, lejepa-s1
            if common.endswith(tail) and len(common) > len(tail):
                common = common[: -len(tail)].rstrip("-_=. ")
        return common

    def preset(group: list[Run]) -> str:
        try:
            return group[0].config.preset
        except Exception:
            return ""

    labels = [g[0].name for g in members]
    for candidate in (prefix, preset):
        names = [candidate(g) for g in members]
        if all(names) and len(set(names)) == len(names):
            labels = names
            break
    def count(group: list[Run]) -> str:
        seeds = {_seed(r) for r in group}
        return f"{len(group)} seeds" if len(seeds) == len(group) else f"{len(group)} runs"

    return [(label if len(g) == 1 else f"{label} ({count(g)})", g) for label, g in zip(labels, members)]


def _add_band(fig: go.Figure, x, mean, std, colour: str, label: str, hover: str, customdata=None) -> None:
    """Mean line with a +- std band drawn as a filled region (the band is left out of the legend)."""
    x = list(x)
    fig.add_trace(go.Scatter(x=x + x[::-1], y=list(mean + std) + list((mean - std)[::-1]), fill="toself",
                             fillcolor=with_alpha(colour, 0.2), line=dict(width=0), hoverinfo="skip",
                             showlegend=False, legendgroup=label, name=f"{label} +- std"))
    fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name=label, legendgroup=label,
                             line=dict(color=colour, width=2), customdata=customdata, hovertemplate=hover))


def compare_runs(runs: "Sequence[Run | str | Path] | str | Path", metric: str = "val/loss", *, smooth: int = 1,
                 group_seeds: bool = True) -> go.Figure:
    """One column of ``metrics.csv`` (``val/loss``, ``train/lejepa/sigreg``, ``val/supervised/acc``,
    ...) against the optimisation step, one line per run.

    Runs that differ only by seed are averaged into one line with a +- std band (``group_seeds``);
    points are matched by step (seeds of one experiment log at the same steps). ``runs`` is a list
    of runs or paths, or a directory whose run sub-directories are all taken. Runs that never logged
    ``metric`` are named in the subtitle; if none did, the error lists what the first run logged.
    smooth: a rolling mean over this many logged points of each run.
    """
    runs = as_runs(runs)
    if smooth < 1:
        raise ConfigError("smooth", smooth, "a whole number >= 1 (1: no smoothing)")
    curves = {run.name: run.curve(metric) for run in runs}
    missing = [name for name, c in curves.items() if c.empty]
    if len(missing) == len(runs):
        logged = [c for c in runs[0].metrics.columns if c not in ("epoch", "step")]
        raise FigureDataError(f"no run logged {metric!r}; run {runs[0].name} logged: {', '.join(logged) or 'nothing'}")
    groups = group_by_seed([r for r in runs if r.name not in missing]) if group_seeds else \
        [(r.name, [r]) for r in runs if r.name not in missing]
    fig = go.Figure()
    palette = qualitative.Plotly
    for k, (label, members) in enumerate(groups):
        colour = palette[k % len(palette)]
        series = []
        for run in members:
            c = curves[run.name]
            values = c["value"] if smooth <= 1 else c["value"].rolling(smooth, min_periods=1).mean()
            series.append(pd.Series(values.to_numpy(), index=c["step"].to_numpy(), name=run.name))
        table = pd.concat(series, axis=1).sort_index()
        table = table[~table.index.duplicated(keep="last")]
        if len(members) == 1:
            fig.add_trace(go.Scatter(x=table.index, y=table.iloc[:, 0], mode="lines+markers", name=label,
                                     line=dict(color=colour, width=2), marker=dict(size=5),
                                     hovertemplate=f"{label}<br>step %{{x}}: %{{y:.4g}}<extra></extra>"))
        else:
            mean, std = table.mean(axis=1), table.std(axis=1, ddof=1).fillna(0.0)
            seeds = ", ".join(_seed(r) for r in members)
            _add_band(fig, table.index, mean.to_numpy(), std.to_numpy(), colour, label,
                      f"{label} (seeds {seeds})<br>step %{{x}}: %{{y:.4g}} ± %{{customdata:.2g}}<extra></extra>",
                      customdata=std.to_numpy())
    notes = (["bands: mean ± std over seeds"] if any(len(g) > 1 for _, g in groups) else []) + \
        ([f"not logged by: {', '.join(missing)}"] if missing else [])
    note = f"<br><sup>{'; '.join(notes)}</sup>" if notes else ""
    fig.update_xaxes(title_text="optimisation step")
    fig.update_yaxes(title_text=metric)
    fig.update_layout(title=f"{metric} across runs{note}", height=440, margin=dict(t=90), showlegend=True)
    return fig


def metric_by_layer(runs: "Sequence[Run | str | Path] | str | Path", metric: str = "linear_acc",
                    epoch: int | None = None, pool: str = "mean", *, group_seeds: bool = True) -> go.Figure:
    """One diagnostic across layers, one line per run: the figure that compares objectives layer
    by layer (for example label accuracy, RankMe, or ``factor/color``).

    epoch: the diagnostics epoch to show (default: each run's last). Runs that differ only by seed
    become a mean with a +- std band over seeds. Runs without the metric are named in the subtitle;
    if no run has it, the error says why for each.
    """
    runs = as_runs(runs)
    curves: dict[str, pd.Series] = {}
    problems: dict[str, str] = {}  # run name -> why it is left out
    for run in runs:
        try:
            table, name = diagnostics_table(run)
            rows = select(table, pool, [metric], name=f"run {run.name}")
        except FigureDataError as error:
            problems[run.name] = str(error)
            continue
        epochs = sorted(int(e) for e in set(rows["epoch"]))
        if epoch is not None and epoch not in epochs:
            problems[run.name] = f"run {run.name} has no diagnostics at epoch {epoch} (it has {epochs})"
            continue
        chosen = epochs[-1] if epoch is None else epoch
        part = rows[rows["epoch"] == chosen].groupby("layer")["value"].last().sort_index()
        curves[run.name] = part
    if not curves:
        raise FigureDataError(f"no run has {metric!r} for pool {pool!r}: " + "; ".join(problems.values()))
    kept = [r for r in runs if r.name in curves]
    groups = group_by_seed(kept) if group_seeds else [(r.name, [r]) for r in kept]
    fig = go.Figure()
    palette = qualitative.Plotly
    for k, (label, members) in enumerate(groups):
        colour = palette[k % len(palette)]
        table = pd.concat([curves[r.name].rename(r.name) for r in members], axis=1).sort_index()
        if len(members) == 1:
            fig.add_trace(go.Scatter(x=table.index, y=table.iloc[:, 0], mode="lines+markers", name=label,
                                     line=dict(color=colour, width=2),
                                     hovertemplate=f"{label}<br>layer %{{x}}: %{{y:.4g}}<extra></extra>"))
        else:
            mean, std = table.mean(axis=1), table.std(axis=1, ddof=1).fillna(0.0)
            _add_band(fig, table.index, mean.to_numpy(), std.to_numpy(), colour, label,
                      f"{label}<br>layer %{{x}}: %{{y:.4g}} ± %{{customdata:.2g}}<extra></extra>",
                      customdata=std.to_numpy())
    when = "last epoch of each run" if epoch is None else f"epoch {epoch}"
    note = f"; left out (no {metric}): {', '.join(problems)}" if problems else ""
    fig.update_xaxes(title_text="layer (0: patch embedding)", dtick=1)
    fig.update_yaxes(title_text=metric)
    fig.update_layout(title=f"{metric} layer by layer across runs<br><sup>{when}, {pool} pool"
                            f"{'; bands: mean ± std over seeds' if any(len(g) > 1 for _, g in groups) else ''}"
                            f"{note}</sup>", height=440, margin=dict(t=90), showlegend=True)
    return fig


__all__ = ["compare_runs", "metric_by_layer", "group_by_seed"]
