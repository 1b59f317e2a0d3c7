"""Per-layer diagnostics of one run as figures: collapse heat-maps over training, covariance
spectra, label and factor decodability, and the layer x layer CKA matrix.

Each reads the tidy ``diagnostics.csv`` (``epoch, layer, pool, metric, value``) or the saved
spectra in ``embeddings/epoch=NNN.npz``; each shows one pool (``mean``: the mean of the patch tokens,
``cls``: the CLS token; layer 0, the patch embedding, has only ``mean``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..data.base import Factor
from ..runs import Run, embedding_key, saved_layers, saved_pools
from .common import FigureDataError, as_run, choose, depth_colours, diagnostics_table, pick_epoch, select

# How to read each collapse metric: whether a higher value is the healthier one (None: neither), and
# what collapse looks like. Heat-maps use a colour scale that is bright where the layer is healthy.
METRIC_GUIDE: dict[str, tuple[bool | None, str]] = {
    "rankme": (True, "higher: more directions used; collapse -> 1"),
    "effective_rank": (True, "higher: variance spread over more directions; collapse -> 1"),
    "participation_ratio": (True, "higher: more directions carry variance; collapse -> 1"),
    "std_l2": (True, "healthy ~ 1/sqrt(D); collapse -> 0"),
    "uniformity": (False, "lower: spread over the sphere (>= -4); collapse -> 0"),
    "sigreg": (False, "lower: closer to an isotropic Gaussian"),
    "alpha": (False, "larger: a few dominant directions; ~0: white noise"),
    "linear_acc": (True, "label accuracy of a linear probe"),
    "knn_acc": (True, "label accuracy of k nearest neighbours"),
    "token_cosine": (False, "tokens alike (over-smoothing) -> 1"),
    "residual_ratio": (True, "tokens alike (over-smoothing) -> 0"),
    "lidar": (True, "higher: more directions separate images from their views"),
    "invariance": (None, "same-image minus other-image similarity of two views"),
    "alignment": (None, "distance between two views of an image; 0: identical"),
}


def collapse_heatmaps(
    diagnostics: pd.DataFrame | Run,
    metrics: Sequence[str] = ("rankme", "effective_rank", "std_l2", "uniformity"),
    pool: str = "mean",
) -> go.Figure:
    """One heat-map per collapse metric: x = epoch, y = layer, each cell annotated with its value.

    Colours are bright where the layer is healthy and dark where it is collapsed, whichever way
    the metric runs. How to read them:

    - ``rankme`` (Garrido et al. 2023): the entropy-based rank of the embeddings, between 1 and
      the width D. Complete collapse (every image the same vector) gives 1; dimensional collapse
      (a few directions) gives a few; a healthy representation uses many of its D dimensions.
    - ``effective_rank`` and ``participation_ratio``: the same question asked of the centred
      covariance's eigenvalues; 1 when one direction carries all the variance.
    - ``std_l2``: the standard deviation of the l2-normalised embeddings, averaged over dimensions.
      It falls to 0 when every image maps to the same direction; ~1/sqrt(D) when they are spread.
    - ``uniformity`` (Wang & Isola 2020): log E exp(-2 ||f(x) - f(y)||^2) on the unit sphere; near
      0 when all points coincide, down to about -4 when they cover the sphere. Lower is healthier.
    - ``sigreg``, ``alpha``, ``token_cosine`` (lower is healthier), ``residual_ratio``,
      ``linear_acc``, ``knn_acc`` and any other recorded metric can be asked for too.

    A row that darkens from left to right is a layer collapsing during training; a column that
    darkens from bottom to top is collapse building up with depth.
    """
    table, name = diagnostics_table(diagnostics)
    metrics = list(metrics)
    if not metrics:
        raise FigureDataError("no metrics were asked for: pass metrics=('rankme', ...)")
    rows = select(table, pool, metrics, name=name)
    cols = 1 if len(metrics) == 1 else 2
    nrows = math.ceil(len(metrics) / cols)
    titles = []
    for metric in metrics:
        guide = METRIC_GUIDE.get(metric, (None, ""))[1]
        titles.append(f"<b>{metric}</b>" + (f"<br><sup>{guide}</sup>" if guide else ""))
    layers = sorted(set(rows["layer"]))
    cell, gap = max(120, 28 * len(layers)), 130  # pixels: a heat-map's height, and room for titles between rows
    plot_height = nrows * cell + (nrows - 1) * gap
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=titles, horizontal_spacing=0.08,
                        vertical_spacing=gap / plot_height if nrows > 1 else 0.0)
    for i, metric in enumerate(metrics):
        part = rows[rows["metric"] == metric]
        grid = part.pivot_table(index="layer", columns="epoch", values="value", aggfunc="last").sort_index()
        grid = grid.reindex(sorted(grid.columns), axis=1)
        higher_is_healthy = METRIC_GUIDE.get(metric, (True, ""))[0]
        fig.add_trace(go.Heatmap(
            z=grid.to_numpy(), x=[str(e) for e in grid.columns], y=[str(l) for l in grid.index],
            colorscale="Viridis", reversescale=higher_is_healthy is False, showscale=False,
            texttemplate="%{z:.3g}", textfont=dict(size=10), name=metric,
            hovertemplate=f"{metric}<br>epoch %{{x}}, layer %{{y}}: %{{z:.4g}}<extra></extra>",
        ), row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(title_text="epoch", type="category")
    fig.update_yaxes(title_text="layer", type="category")
    which = "patch-token mean" if pool == "mean" else pool
    fig.update_layout(
        title=f"Collapse over training, layer by layer: {name} ({which} pool)"
              "<br><sup>bright: healthy; dark: collapsed</sup>",
        height=plot_height + 130 + 70, margin=dict(t=130, b=70),
    )
    return fig


def _last_embedding_epoch(run: Run, epoch: int | None) -> int:
    epochs = run.embedding_epochs()
    if not epochs:
        try:
            config = run.config.diagnostics
            why = ("diagnostics.enabled was false" if not config.enabled else
                   "diagnostics.save_embeddings was false" if not config.save_embeddings else
                   "no diagnostics pass has finished yet")
        except Exception:
            why = "the run has no embeddings directory"
        raise FigureDataError(f"run {run.name} has no saved embeddings (embeddings/epoch=NNN.npz): {why}")
    if epoch is None:
        return epochs[-1]
    choose("epoch", epoch, epochs, f"epochs with saved embeddings in run {run.name}")
    return int(epoch)


def spectra(run: Run | str, epoch: int | None = None, pool: str = "mean", *, relative: bool = False,
            floor: float = 1e-10) -> go.Figure:
    """The eigenvalue spectrum of every layer's embedding covariance, on a log scale.

    The spectrum is that of the covariance of the l2-normalised probe embeddings (Jing et al.,
    2022; ``spectrum_l<layer>_<pool>`` in ``embeddings/epoch=NNN.npz``), sorted from the largest
    eigenvalue down. One line per layer, dark (shallow) to bright (deep).

    What to look for: a spectrum that falls off a cliff after k eigenvalues is a layer that uses
    only k directions (dimensional collapse); a flat, slowly decaying spectrum is a layer using
    its whole width. Complete collapse puts every eigenvalue at the floor.

    relative: divide each spectrum by its sum (the share of variance per direction), which makes
    layers of different total variance comparable. floor: eigenvalues below it (exact zeros
    included) are drawn at it, so that a collapsed direction shows as a drop to the floor instead
    of vanishing from the log axis.
    """
    run = as_run(run)
    epoch = _last_embedding_epoch(run, epoch)
    names = run.embedding_keys(epoch)
    layers = saved_layers(names, pool, spectrum=True)
    if not layers:
        choose("pool", pool, saved_pools(names, spectrum=True), f"pools with saved spectra at epoch {epoch} of run {run.name}")
    arrays = run.embeddings(epoch, [embedding_key(layer, pool, spectrum=True) for layer in layers])
    fig = go.Figure()
    for layer, colour in zip(layers, depth_colours(len(layers))):
        values = np.asarray(arrays[embedding_key(layer, pool, spectrum=True)], dtype=np.float64)
        if relative and values.sum() > 0:
            values = values / values.sum()
        fig.add_trace(go.Scatter(
            x=np.arange(1, len(values) + 1), y=np.maximum(values, floor), mode="lines", name=f"layer {layer}",
            line=dict(color=colour, width=2), customdata=values,
            hovertemplate=f"layer {layer}<br>eigenvalue #%{{x}}: %{{customdata:.3g}}<extra></extra>",
        ))
    fig.update_xaxes(title_text="eigenvalue rank k (largest first)")
    fig.update_yaxes(type="log", title_text="share of variance" if relative else "eigenvalue (log scale)")
    fig.update_layout(
        title=f"Covariance spectrum per layer: {run.name}, epoch {epoch} ({pool} pool)"
              "<br><sup>a cliff after k eigenvalues: the layer uses only k directions</sup>",
        height=460, legend_title_text="depth", margin=dict(t=100),
    )
    return fig


AXIS_FLOOR = -0.2  # the decodability axis starts here even when an R² is lower
LEVEL_COLOURS = {  # a hue per level of abstraction, shades within it
    "low": ["#08519c", "#3182bd", "#6baed6", "#9ecae1"],
    "mid": ["#006d2c", "#31a354", "#74c476", "#a1d99b", "#c7e9c0"],
    "high": ["#a50f15", "#de2d26", "#fb6a4a", "#fc9272"],
}


def decodability(
    diagnostics: pd.DataFrame | Run,
    epoch: int | None = None,
    pool: str = "mean",
    factor_specs: Sequence[Factor] | None = None,
) -> go.Figure:
    """Where does each level of abstraction live? Label and factor probe scores against depth.

    Black lines: the label, by a linear probe (``linear_acc``, solid) and by k nearest neighbours
    (``knn_acc``, dashed). Coloured lines: every ground-truth factor (``factor/<name>``), scored by
    accuracy when categorical and R^2 when continuous. With ``factor_specs`` (taken from the run's
    probe set when ``diagnostics`` is a run) the factors are coloured by level -- blues for
    low-level (colour, texture, noise), greens for mid-level (shape, size, position), reds for
    high-level (count, relations) -- and grouped by level in the legend.

    What to look for: low-level factors readable early and fading with depth is a network that
    discards detail; a factor that is never decodable is one the objective ignores; the goal of
    the research question (docs/concepts.md) is a last layer where every level is still readable.
    """
    table, name = diagnostics_table(diagnostics)
    if factor_specs is None and not isinstance(diagnostics, pd.DataFrame):
        try:
            factor_specs = as_run(diagnostics).probe_info()["factor_specs"]
        except (FileNotFoundError, KeyError):  # no saved probe set: factors stay uncoloured by level
            factor_specs = None
    wanted = [m for m in ("linear_acc", "knn_acc") if m in set(table["metric"])]
    factors = sorted({m for m in table["metric"].astype(str) if m.startswith("factor/")})
    if not wanted and not factors:
        raise FigureDataError(f"{name} has no linear_acc, knn_acc or factor/<name> metrics: "
                              "the data has neither labels nor factors")
    rows = select(table, pool, wanted + factors, name=name)
    epoch = pick_epoch(rows, epoch, name)
    rows = rows[rows["epoch"] == epoch]
    specs = {f.name: f for f in factor_specs or ()}
    order = [f.name for f in factor_specs or ()]
    factors.sort(key=lambda m: (order.index(m[7:]) if m[7:] in order else len(order), m))
    fig = go.Figure()
    shade = {level: 0 for level in LEVEL_COLOURS}
    lowest = 0.0
    for metric in wanted + factors:
        part = rows[rows["metric"] == metric].sort_values("layer")
        lowest = min(lowest, float(part["value"].min()))
        if metric in ("linear_acc", "knn_acc"):
            label = "label, linear probe" if metric == "linear_acc" else "label, kNN"
            style = dict(line=dict(color="black", width=3, dash="solid" if metric == "linear_acc" else "dash"),
                         legendgroup="label", legendgrouptitle_text="label")
            score = "accuracy"
        else:
            factor = metric[len("factor/"):]
            spec = specs.get(factor)
            label, score = factor, "accuracy or R²"
            style = {}
            if spec is not None:
                palette = LEVEL_COLOURS.get(spec.level, LEVEL_COLOURS["mid"])
                colour = palette[shade.get(spec.level, 0) % len(palette)]
                shade[spec.level] = shade.get(spec.level, 0) + 1
                score = "accuracy" if spec.kind == "categorical" else "R²"
                style = dict(line=dict(color=colour, width=2), legendgroup=spec.level,
                             legendgrouptitle_text=f"{spec.level}-level factors")
        fig.add_trace(go.Scatter(x=part["layer"], y=part["value"], mode="lines+markers", name=label,
                                 hovertemplate=f"{label}<br>layer %{{x}}: {score} %{{y:.3f}}<extra></extra>",
                                 **style))
    # R² has no lower bound: one hopeless continuous factor would squash every other line, so the
    # axis stops at AXIS_FLOOR and the subtitle says so (hovering still shows every true value)
    clipped = lowest < AXIS_FLOOR
    fig.update_xaxes(title_text="layer (0: patch embedding)", dtick=1)
    fig.update_yaxes(title_text="probe score (accuracy; R² for continuous factors)",
                     range=[max(min(lowest, 0.0), AXIS_FLOOR) - 0.03, 1.03])
    note = f"; R² below {AXIS_FLOOR} (worse than predicting the mean) is off the axis" if clipped else ""
    groups = len({t.legendgroup for t in fig.data})
    fig.update_layout(
        title=f"Where each level of abstraction lives: {name}, epoch {epoch} ({pool} pool)"
              f"<br><sup>how well a linear read-out recovers the label and every factor at each layer{note}</sup>",
        height=max(480, 160 + 20 * (len(fig.data) + 2 * groups)), legend=dict(groupclick="toggleitem"),
        margin=dict(t=100),
    )
    return fig


def cka(diagnostics: pd.DataFrame | Run, epoch: int | None = None, pool: str = "mean") -> go.Figure:
    """Linear CKA between every pair of layers (Kornblith et al. 2019): how similar two layers'
    representations of the probe set are, up to rotation and scale (1: the same, 0: unrelated).

    What to look for: bright blocks along the diagonal are stages of layers that compute the same
    representation; a bright last row means the top layers barely change what they receive.
    """
    table, name = diagnostics_table(diagnostics)
    rows = select(table, pool, prefix="cka/", name=name)
    epoch = pick_epoch(rows, epoch, name)
    rows = rows[rows["epoch"] == epoch]
    grid = (rows.assign(other=rows["metric"].str[len("cka/"):].astype(int))
            .pivot_table(index="layer", columns="other", values="value", aggfunc="last"))
    layers = sorted(set(grid.index) | set(grid.columns))
    grid = grid.reindex(index=layers, columns=layers)
    labels = [str(l) for l in layers]
    fig = go.Figure(go.Heatmap(
        z=grid.to_numpy(), x=labels, y=labels, zmin=0.0, zmax=1.0, colorscale="Viridis",
        texttemplate="%{z:.2f}", colorbar=dict(title="CKA"),
        hovertemplate="CKA(layer %{y}, layer %{x}) = %{z:.3f}<extra></extra>",
    ))
    side = 160 + 46 * len(layers)
    fig.update_xaxes(title_text="layer", type="category", constrain="domain")
    fig.update_yaxes(title_text="layer", type="category", scaleanchor="x")
    fig.update_layout(title=f"Layer x layer similarity (linear CKA): {name}, epoch {epoch} ({pool} pool)",
                      height=max(420, side), width=max(520, side + 120))
    return fig
