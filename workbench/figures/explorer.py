"""The probe set's 2-D layouts as one scatter with a slider (over layers, or over epochs) and a
colour-by menu: how the points regroup as they go deeper, or as training goes on.

Every layout and every colouring is embedded in the figure itself (plotly slider steps and
drop-down buttons that restyle the one scatter trace), so the figure works in an exported HTML page
without a kernel. A widget can still drive it: each point's probe id is ``customdata[0]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative, sample_colorscale

from ..data.base import Factor
from ..errors import ConfigError
from .common import FigureDataError, choose

if TYPE_CHECKING:  # only annotations: importing the figures never pulls in the layout computation
    from ..analysis.layouts import Layouts

MAX_CATEGORIES_GUESSED = 24  # without factor specs, integer factors with at most this many values are categorical
WEBGL_ABOVE = 5000  # points; an SVG scatter of more gets slow to pan and hover


@dataclass
class Colouring:
    """One entry of the colour-by menu: a value per point and how to turn it into colours."""

    name: str
    values: np.ndarray  # N floats (category codes, or the continuous value)
    categories: list[str] | None  # names of the codes 0..K-1; None for a continuous value

    def text(self, value: float) -> str:
        """A value as the hover label shows it."""
        if not np.isfinite(value):
            return "n/a"
        if self.categories is not None:
            code = int(round(value))
            return self.categories[code] if 0 <= code < len(self.categories) else str(code)
        return f"{value:.2f}"

    def marker(self) -> dict:
        """Marker attributes for this colouring (every key always present, so restyling from one
        colouring to another leaves nothing of the previous one behind)."""
        finite = self.values[np.isfinite(self.values)]
        if self.categories is not None:
            k = max(len(self.categories), 1)
            whole = finite.size == self.values.size  # integer codes print as "2", not "2.0"
            codes = np.round(self.values).astype(int) if whole else self.values
            return {"color": codes, "colorscale": discrete_colorscale(k), "cmin": -0.5, "cmax": k - 0.5,
                    "colorbar.title.text": self.name, "colorbar.tickmode": "array",
                    "colorbar.tickvals": list(range(k)), "colorbar.ticktext": list(self.categories)}
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        return {"color": _rounded(self.values, hi - lo), "colorscale": "Viridis",
                "cmin": lo, "cmax": hi if hi > lo else lo + 1.0,
                "colorbar.title.text": self.name, "colorbar.tickmode": "auto",
                "colorbar.tickvals": None, "colorbar.ticktext": None}


def discrete_colorscale(k: int) -> list[list]:
    """A stepped colour scale giving the integer codes 0..k-1 (with cmin -0.5, cmax k - 0.5) one flat
    colour each: a qualitative palette for up to 24 categories, evenly spaced Turbo colours beyond."""
    palette = qualitative.Plotly if k <= 10 else qualitative.Dark24
    colours = palette[:k] if k <= len(palette) else sample_colorscale("Turbo", list(np.linspace(0, 1, k)))
    scale = []
    for i, colour in enumerate(colours):
        scale += [[i / k, colour], [(i + 1) / k, colour]]
    return scale


def colourings(layouts: Layouts, probe: dict | None = None) -> list[Colouring]:
    """The colour-by menu: ``label`` (when there are labels) and every factor, in layout order.

    Labels and factors come from the layouts, or from the probe set (rows ``layouts.ids``) when the
    layouts lack them. A factor's kind comes from ``probe["factor_specs"]``; without specs, a
    factor whose values are all small whole numbers is treated as categorical.
    """
    probe = probe or {}
    ids = np.asarray(layouts.ids)
    out: list[Colouring] = []
    labels = layouts.labels if layouts.labels is not None else (
        np.asarray(probe["labels"])[ids] if probe.get("labels") is not None else None)
    if labels is not None:
        labels = np.asarray(labels, dtype=np.float64)
        names = layouts.label_names or probe.get("classes")
        if not names:
            names = [str(i) for i in range(int(np.nanmax(labels)) + 1)] if labels.size else []
        out.append(Colouring("label", labels, list(names)))
    factors, factor_names = layouts.factors, list(layouts.factor_names)
    specs = {f.name: f for f in probe.get("factor_specs") or ()}
    if factors is None and probe.get("factors") is not None and specs:
        factors, factor_names = np.asarray(probe["factors"])[ids], [f.name for f in probe["factor_specs"]]
    if factors is not None:
        factors = np.asarray(factors, dtype=np.float64)
        if factors.ndim != 2 or factors.shape[1] != len(factor_names):
            raise FigureDataError(f"layouts.factors has shape {factors.shape} but {len(factor_names)} factor names")
        for j, name in enumerate(factor_names):
            column = factors[:, j]
            spec: Factor | None = specs.get(name)
            if spec is not None:
                categories = list(spec.values) if spec.kind == "categorical" else None
            else:
                finite = column[np.isfinite(column)]
                whole = finite.size and np.all(finite == np.round(finite)) and finite.min() >= 0
                if whole and len(np.unique(finite)) <= MAX_CATEGORIES_GUESSED:
                    categories = [str(i) for i in range(int(finite.max()) + 1)]
                else:
                    categories = None
            out.append(Colouring(name, column, categories))
    return out


def _rounded(values: np.ndarray, extent: float) -> np.ndarray:
    """Values rounded to about 1/10,000 of their extent (far below a pixel or a colour step): the
    page stores ``0.1234`` instead of ``0.12340000271797180``."""
    decimals = int(max(0, 4 - np.floor(np.log10(max(extent, 1e-12)))))
    return np.round(np.asarray(values, dtype=np.float64), decimals)


def _compact(coords: np.ndarray, extent: float) -> list[list[float]]:
    """An N x 2 layout as [xs, ys] lists, rounded (see :func:`_rounded`)."""
    return _rounded(coords, extent).T.tolist()


def _explorer(layouts: Layouts, keys: list[tuple[int, int]], steps: list[str], active: int, slider_name: str,
              colour_by: str, probe: dict | None, max_points: int | None, title: str, point_size: float,
              webgl: bool | None) -> go.Figure:
    n = len(layouts.ids)
    rows = np.arange(n)
    if max_points is not None:
        if max_points < 1:
            raise ConfigError("max_points", max_points, "a whole number >= 1, or None for every point")
        if max_points < n:  # a fixed random subset: the same points at every step and on every call
            rows = np.sort(np.random.default_rng(0).choice(n, size=max_points, replace=False))
    options = colourings(layouts, probe)
    if not options:
        raise FigureDataError("the layouts carry neither labels nor factors, and no probe set was given to colour by")
    choose("colour_by", colour_by, [o.name for o in options], "label and the factors of these layouts")
    options = [Colouring(o.name, o.values[rows], o.categories) for o in options]

    ids = np.asarray(layouts.ids)[rows]
    custom = np.empty((len(rows), 1 + len(options)), dtype=object)
    custom[:, 0] = ids.astype(int)
    for j, option in enumerate(options):
        custom[:, j + 1] = [option.text(v) for v in option.values]
    hover = "<b>probe #%{customdata[0]}</b>" + "".join(
        f"<br>{o.name}: %{{customdata[{j + 1}]}}" for j, o in enumerate(options)) + "<extra></extra>"

    stacked = np.concatenate([np.asarray(layouts.coords[k])[rows] for k in keys])
    lo, hi = np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0)
    pad = 0.05 * np.maximum(hi - lo, 1e-9)
    extent = float(np.max(hi - lo))
    xy = [_compact(np.asarray(layouts.coords[k])[rows], extent) for k in keys]

    current = next(o for o in options if o.name == colour_by)
    marker = {"size": point_size, "opacity": 0.8, "showscale": True, "colorbar": {"len": 0.8, "thickness": 14}}
    for key, value in current.marker().items():
        target = marker
        *path, leaf = key.split(".")
        for part in path:
            target = target.setdefault(part, {})
        target[leaf] = value
    # SVG draws a few thousand points well and renders everywhere; WebGL only for larger sets
    trace = go.Scattergl if (webgl if webgl is not None else len(rows) > WEBGL_ABOVE) else go.Scatter
    fig = go.Figure(trace(x=xy[active][0], y=xy[active][1], mode="markers", marker=marker,
                          customdata=custom, hovertemplate=hover, name="probe"))
    # restyle arguments are per trace: each value is wrapped in a list for the one trace
    slider_steps = [dict(label=label, method="restyle", args=[{"x": [x], "y": [y]}])
                    for label, (x, y) in zip(steps, xy)]
    buttons = [dict(label=o.name, method="restyle",
                    args=[{f"marker.{k}": [v.tolist() if isinstance(v, np.ndarray) else v]
                           for k, v in o.marker().items()}]) for o in options]
    fig.update_layout(
        title=dict(text=title, y=0.98, yanchor="top"), height=660, margin=dict(t=125, b=90),
        xaxis=dict(range=[lo[0] - pad[0], hi[0] + pad[0]], showticklabels=False, title="UMAP 1", zeroline=False),
        yaxis=dict(range=[lo[1] - pad[1], hi[1] + pad[1]], showticklabels=False, title="UMAP 2", zeroline=False),
        sliders=[dict(active=active, steps=slider_steps, currentvalue=dict(prefix=f"{slider_name}: "),
                      pad=dict(t=40))],
        updatemenus=[dict(type="dropdown", buttons=buttons, active=[o.name for o in options].index(colour_by),
                          x=0.1, xanchor="left", y=1.01, yanchor="bottom", showactive=True)],
        annotations=[dict(text="colour by", x=0.0, xref="paper", xanchor="left", y=1.025, yref="paper",
                          yanchor="bottom", showarrow=False)],
        meta={"keys": [list(k) for k in keys], "colour_by": [o.name for o in options]},
    )
    return fig


def _layouts_or_raise(layouts: Layouts) -> None:
    if not layouts.coords:
        raise FigureDataError("the layouts are empty: no (epoch, layer) was laid out")


def layer_explorer(
    layouts: Layouts,
    epoch: int | None = None,
    colour_by: str = "label",
    probe: dict | None = None,
    max_points: int | None = None,
    *,
    layer: int | None = None,
    point_size: float = 5,
    webgl: bool | None = None,
    title: str | None = None,
) -> go.Figure:
    """The probe set laid out in 2-D at every layer of one epoch, with a slider over the layers.

    Each point is one probe image, at the same place in the same layout family from layer to layer
    (the layouts are aligned), so moving the slider shows the points regroup with depth. The
    colour-by menu holds ``label`` and every factor: categorical ones get one colour per value
    (named on the colour bar), continuous ones a colour scale. Hovering shows the probe id, the
    label and every factor (formatted with ``probe["factor_specs"]`` when given, e.g. from
    :meth:`Run.probe`).

    What to look for: the layer where points of one label first gather into separate islands; a
    low-level factor (colour, texture) that organises the early layers and disappears later; at a
    collapsed layer, all points piled into one blob whatever the colouring.

    epoch: which epoch (default: the last laid out). layer: the slider's starting layer (default:
    the last). max_points: show a fixed random subset of this many points (a lighter page).
    webgl: draw with WebGL (``Scattergl``); default: only above 5,000 points. title: what the
    points are, for the figure's title (default "Probe set"; a run's name is a good choice).
    """
    _layouts_or_raise(layouts)
    epochs = layouts.epochs
    if epoch is None:
        epoch = epochs[-1]
    choose("epoch", epoch, epochs, "epochs laid out")
    layers = sorted(l for e, l in layouts.coords if e == epoch)
    if layer is None:
        layer = layers[-1]
    choose("layer", layer, layers, f"layers laid out at epoch {epoch}")
    title = (f"{title or 'Probe set'} at every layer (epoch {epoch}, {layouts.pool} pool)"
             "<br><sup>drag the slider to go deeper; pick a colouring above the plot</sup>")
    return _explorer(layouts, [(epoch, l) for l in layers], [str(l) for l in layers], layers.index(layer), "layer",
                     colour_by, probe, max_points, title, point_size, webgl)


def epoch_explorer(
    layouts: Layouts,
    layer: int | None = None,
    colour_by: str = "label",
    probe: dict | None = None,
    max_points: int | None = None,
    *,
    epoch: int | None = None,
    point_size: float = 5,
    webgl: bool | None = None,
    title: str | None = None,
) -> go.Figure:
    """The probe set laid out in 2-D at one layer, with a slider over the saved epochs: how training
    reorganises that layer (for example a latent loss slowly pulling every point together).

    layer: which layer (default: the last). epoch: the slider's starting epoch (default: the last).
    Everything else as in :func:`layer_explorer`.
    """
    _layouts_or_raise(layouts)
    if layer is None:
        layer = layouts.layers[-1]
    choose("layer", layer, layouts.layers, "layers laid out")
    epochs = sorted(e for e, l in layouts.coords if l == layer)
    if epoch is None:
        epoch = epochs[-1]
    choose("epoch", epoch, epochs, f"epochs laid out at layer {layer}")
    title = (f"{title or 'Probe set'} at layer {layer} over training ({layouts.pool} pool)"
             "<br><sup>drag the slider through the epochs; pick a colouring above the plot</sup>")
    return _explorer(layouts, [(e, layer) for e in epochs], [str(e) for e in epochs], epochs.index(epoch), "epoch",
                     colour_by, probe, max_points, title, point_size, webgl)


__all__: Sequence[str] = ["layer_explorer", "epoch_explorer", "colourings", "discrete_colorscale"]
