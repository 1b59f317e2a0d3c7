"""Curves over optimisation steps: the loss terms of every objective, their schedules, and the
quick two-panel overview of the quickstart."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ..errors import ConfigError
from ..runs import Run
from .common import FigureDataError, as_run


def training_curves(run: Run, smooth: int = 1) -> go.Figure:
    """Loss terms (left), accuracies (middle) and monitors (right) against the optimisation step.

    Monitors (``train/monitor/*``: RankMe, std of the l2-normalised embeddings) and the logged
    schedules (scheduled weights and parameters, the teacher's momentum) have their own panel: they
    are not losses, and on the loss axis a RankMe of 20 would flatten every loss near 1. The third
    panel is left out when the run logged none of them.

    Training values are per logged step (optionally a rolling mean over ``smooth`` points);
    validation values are per epoch, drawn as markers at the step where the epoch ended.
    """
    m = run.metrics
    columns = sorted(c for c in m.columns if c.startswith(("train/", "val/")) and c != "train/lr")
    _, schedules = _objective_names(run, m.columns) if not m.empty else ([], {})
    panel = {column: _curve_panel(column, schedules) for column in columns}
    titles = ["losses", "accuracy"] + (["monitors and schedules"] if "monitors" in panel.values() else [])
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.07)
    if m.empty:
        return fig
    col_of = {"losses": 1, "accuracy": 2, "monitors": 3}
    for column in columns:
        curve = run.curve(column)
        if curve.empty:
            continue
        is_val = column.startswith("val/")
        y = curve["value"] if is_val or smooth <= 1 else curve["value"].rolling(smooth, min_periods=1).mean()
        fig.add_trace(
            go.Scatter(x=curve["step"], y=y, name=column, mode="lines+markers" if is_val else "lines",
                       line=dict(dash="dot") if is_val else None),
            row=1, col=col_of[panel[column]],
        )
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", range=[0, 1], row=1, col=2)
    if len(titles) == 3:
        fig.update_yaxes(title_text="value", row=1, col=3)
    fig.update_layout(title=f"Training curves: {run.name}", height=380, legend=dict(font_size=10))
    return fig


def _curve_panel(column: str, schedules: dict[str, set[str]]) -> str:
    """Which panel of :func:`training_curves` a ``metrics.csv`` column belongs to: ``accuracy``
    (a last part starting with ``acc``), ``monitors`` (``train/monitor/*``, the teacher's momentum and
    every logged schedule of an objective) or ``losses`` (the rest)."""
    parts = column.split("/")
    if parts[-1].startswith("acc"):
        return "accuracy"
    if column.startswith(("train/monitor/", "train/teacher/")):
        return "monitors"
    if len(parts) == 3 and parts[0] == "train" and parts[2] in schedules.get(parts[1], ()):
        return "monitors"
    return "losses"


def _metrics_or_raise(run: Run):
    m = run.metrics
    if m.empty or "step" not in m:
        status = run.summary.get("status", "not started")
        raise FigureDataError(f"run {run.name} has no metrics.csv yet (status: {status}): nothing was logged")
    return m


def _objective_names(run: Run, columns) -> tuple[list[str], dict[str, set[str]]]:
    """The objectives of ``run`` in config order, and for each the names of its logged schedules
    (``weight`` and its scheduled parameters). Without a readable config the names come from the
    ``train/<objective>/<term>`` columns, and only ``weight`` is recognised as a schedule."""
    try:
        config = run.config
        names = list(config.active_objectives())
        schedules = {n: {"weight", *config.objectives[n].params} for n in names}
    except Exception:  # a run directory without a readable config.yaml: fall back on the columns
        names = list(dict.fromkeys(c.split("/")[1] for c in columns if c.count("/") == 2 and c.startswith("train/")))
        names = [n for n in names if n not in ("monitor", "teacher")]
        schedules = {n: {"weight"} for n in names}
    return names, schedules


def _no_training_logged(run: Run) -> go.Figure:
    """The total loss panel of a run that logged no training step (fewer steps than the logging
    interval): its validation losses, if any, and a note saying why the lines are missing."""
    try:
        interval = f"trainer.log_every_n_steps = {run.config.trainer.log_every_n_steps}"
    except Exception:  # an unreadable config: the note still says what to change
        interval = "trainer.log_every_n_steps"
    steps = run.summary.get("steps")
    ran = f"made {steps} optimisation steps, fewer than" if steps is not None else "made fewer optimisation steps than"
    fig = go.Figure()
    val = run.curve("val/loss")
    if not val.empty:
        fig.add_trace(go.Scatter(x=val["step"], y=val["value"], mode="markers", name="val/loss",
                                 marker=dict(size=8, symbol="diamond")))
    fig.add_annotation(text=f"no training step was logged: the run {ran} {interval}<br>"
                            "(lower it, or train longer, to see the loss terms)",
                       xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font=dict(size=13))
    fig.update_xaxes(title_text="optimisation step")
    fig.update_yaxes(title_text="loss term")
    fig.update_layout(title=f"Loss terms per objective: {run.name}", height=380)
    return fig


def _nothing_trained(run: Run) -> go.Figure:
    """The loss panel of an analysis directory (``analysis.yaml``): its model was trained elsewhere."""
    fig = go.Figure()
    fig.add_annotation(text=f"{run.name} analyses a model trained elsewhere (see its analysis.yaml):<br>"
                            "no loss was logged here", xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                       font=dict(size=13))
    fig.update_layout(title=f"Loss terms per objective: {run.name}", height=380)
    return fig


def loss_curves(run: Run | str, smooth: int = 1) -> go.Figure:
    """Every loss term of every objective against the step: one panel per objective.

    The first panel is the total that was minimised (``train/loss``, the weighted sum of all
    terms); then one panel per objective with each of its ``train/<objective>/<term>`` columns as a
    line (terms and the objective's logged metrics such as ``acc``); validation values, logged once
    per epoch, are markers of the same colour at the step where the epoch ended. A last panel shows
    the schedules that were logged: scheduled objective weights (``train/<objective>/weight``),
    scheduled parameters (mask ratios, temperatures) and the EMA teacher's momentum.

    What to look for: a term that drops to a constant while the others move (a collapsed latent
    loss often reaches its trivial minimum fast); a term whose weight schedule switches it on late.

    smooth: a rolling mean over this many logged training points (validation values and schedules are
    never smoothed). A run that logged no training step (fewer steps than
    ``trainer.log_every_n_steps``) gets its validation losses and a note saying so; an analysis
    directory (:func:`workbench.analysis.analyze.analyze`: nothing trained) a note saying that.
    """
    if smooth < 1:
        raise ConfigError("smooth", smooth, "a whole number >= 1 (1: no smoothing)")
    run = as_run(run)
    if run.analysis is not None and run.metrics.empty:
        return _nothing_trained(run)
    m = _metrics_or_raise(run)
    if "train/loss" not in m:
        return _no_training_logged(run)
    names, schedules = _objective_names(run, m.columns)
    panels: list[tuple[str, list[tuple[str, str | None]]]] = [("total (weighted sum)", [("train/loss", "val/loss")])]
    schedule_columns: list[str] = []
    for name in names:
        terms = []
        for column in m.columns:
            parts = column.split("/")
            if len(parts) != 3 or parts[:2] != ["train", name]:
                continue
            if parts[2] in schedules.get(name, ()):
                schedule_columns.append(column)
            else:
                terms.append((column, f"val/{name}/{parts[2]}"))
        if terms:
            panels.append((name, terms))
    if "train/teacher/momentum" in m:
        schedule_columns.append("train/teacher/momentum")
    if schedule_columns:
        panels.append(("schedules", [(c, None) for c in schedule_columns]))

    cols = 1 if len(panels) == 1 else 2
    rows = -(-len(panels) // cols)
    panel, gap = 260, 110  # pixels: a panel's height, and room for an axis title and a subplot title
    plot_height = rows * panel + (rows - 1) * gap
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[p[0] for p in panels],
                        vertical_spacing=gap / plot_height if rows > 1 else 0.0, horizontal_spacing=0.1)
    palette = qualitative.Plotly
    for index, (title, columns) in enumerate(panels):
        row, col = index // cols + 1, index % cols + 1
        for k, (train_column, val_column) in enumerate(columns):
            colour = palette[k % len(palette)]
            label = train_column.removeprefix("train/")
            curve = run.curve(train_column)
            smoothed = smooth > 1 and title != "schedules"  # a schedule is exact: never smoothed
            y = curve["value"].rolling(smooth, min_periods=1).mean() if smoothed else curve["value"]
            fig.add_trace(go.Scatter(x=curve["step"], y=y, mode="lines", name=label, line=dict(color=colour, width=1.5),
                                     legendgroup=title, legendgrouptitle_text=title,
                                     hovertemplate=f"{label}<br>step %{{x}}: %{{y:.4g}}<extra></extra>"),
                          row=row, col=col)
            val = run.curve(val_column) if val_column and val_column in m else None
            if val is not None and not val.empty:
                vlabel = val_column
                fig.add_trace(go.Scatter(x=val["step"], y=val["value"], mode="markers", name=vlabel,
                                         marker=dict(color=colour, size=8, symbol="diamond", line=dict(width=1)),
                                         legendgroup=title,
                                         hovertemplate=f"{vlabel} (epoch %{{customdata}})<br>step %{{x}}: %{{y:.4g}}"
                                                       "<extra></extra>", customdata=val["epoch"]),
                              row=row, col=col)
        fig.update_yaxes(title_text="value" if title == "schedules" else "loss term", row=row, col=col)
        fig.update_xaxes(title_text="optimisation step", row=row, col=col)
    smoothing = f", rolling mean of {smooth} points" if smooth > 1 else ""
    fig.update_layout(
        title=f"Loss terms per objective: {run.name}<br><sup>lines: training, per logged step{smoothing}; "
              "diamonds: validation, per epoch</sup>",
        height=plot_height + 110 + 70, legend=dict(font_size=10, groupclick="toggleitem"), margin=dict(t=110, b=70),
    )
    return fig
