"""The layer explorer: the probe set in 2-D, layer by layer, with each point's image on demand.

Pick a run, an epoch and a layer; every point is one held-out probe image, placed by an aligned
2-D layout (UMAP) of that layer's embeddings (:func:`workbench.analysis.layouts.compute_layouts`, cached in
the run directory). Colour the points by the label or any ground-truth factor; hover over or click a
point to see its image, enlarged, and all its factors.

    explorer = widgets.layer_explorer("../runs")      # the newest run; the others in the picker
    explorer.layer.value = 2                          # what the slider does
    explorer

With ``interactive=False`` the same view is the static :func:`workbench.figures.layer_explorer`
figure (plotly's own slider over layers and colour-by menu), which keeps working in exported HTML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go

from ..runs import Run, load_run
from .images import factor_rows, png_bytes, rows_html
from .static import StaticPanel

Layouter = Callable[..., Any]  # (run, pool=..., **kwargs) -> Layouts


def runs_with_embeddings(runs_dir: str | Path) -> list[Path]:
    """Run directories under ``runs_dir`` that saved probe embeddings, oldest first (by the time
    their config was written)."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir()
             if (p / "config.yaml").is_file() and any((p / "embeddings").glob("epoch=*.npz"))]
    return sorted(found, key=lambda p: ((p / "config.yaml").stat().st_mtime, p.name))


def newest_run(runs_dir: str | Path) -> Path | None:
    """The most recently started run with saved embeddings under ``runs_dir`` or one directory
    below it (notebooks keep their runs in ``<runs_dir>/<notebook>/``), or None when there is none."""
    root = Path(runs_dir)
    if not root.is_dir():
        return None
    found = runs_with_embeddings(root)
    for sub in root.iterdir():
        if sub.is_dir() and not (sub / "config.yaml").is_file():
            found += runs_with_embeddings(sub)
    return max(found, key=lambda p: ((p / "config.yaml").stat().st_mtime, p.name), default=None)


def resolve_runs(source: Run | str | Path) -> tuple[list[Path], Path]:
    """(the runs the picker offers, the run shown first) for a run or a directory of runs.

    A run directory brings its sibling runs into the picker; a directory of runs starts at the
    newest. Raises ``FileNotFoundError`` naming the path when there is nothing to explore.
    """
    path = source.path if isinstance(source, Run) else Path(source)
    if (path / "config.yaml").is_file():
        if not any((path / "embeddings").glob("epoch=*.npz")):
            raise FileNotFoundError(f"{path} has no saved embeddings (embeddings/epoch=NNN.npz): train it with "
                                    "diagnostics.enabled=true and diagnostics.save_embeddings=true")
        siblings = runs_with_embeddings(path.parent)
        return (siblings if path in siblings else [*siblings, path]), path
    runs = runs_with_embeddings(path)
    if not runs:
        raise FileNotFoundError(f"{path} holds no run directory with saved embeddings "
                                "(a run directory has config.yaml and embeddings/epoch=NNN.npz)")
    return runs, runs[-1]


def _default_layouter(run: Run, pool: str = "mean", **kwargs: Any) -> Any:
    from ..analysis.layouts import compute_layouts

    kwargs.setdefault("progress", False)
    return compute_layouts(run, pool=pool, **kwargs)


class LayerExplorer(W.HBox):
    """The explorer panel (an ``ipywidgets.HBox``); see the module docstring.

    Controls: ``run_picker`` (Dropdown of run paths), ``pool`` (ToggleButtons), ``epoch``
    (SelectionSlider), ``layer`` (IntSlider), ``colour_by`` (Dropdown). Output: ``figure`` (a
    ``FigureWidget`` whose one scatter trace holds the points, ``customdata[:, 0]`` = probe ids),
    ``image`` (the selected probe image, PNG) and ``details`` (its factors). ``layouts`` and
    ``probe`` are those of the current run; ``selected`` is the probe id shown, or None.
    """

    def __init__(self, runs: list[Path], start: Path, pool: str = "mean", colour_by: str = "label",
                 layouter: Layouter | None = None, point_size: float = 5, **layout_kwargs: Any):
        self.layouter = layouter or _default_layouter
        self.layout_kwargs = layout_kwargs
        self.point_size = point_size
        self._cache: dict[tuple[str, str], Any] = {}
        self._busy = False
        self.layouts: Any = None
        self.probe: dict | None = None
        self.options: list = []
        self.selected: int | None = None

        self.run_picker = W.Dropdown(options=[(p.name, str(p)) for p in runs], value=str(start), description="run",
                                     layout=W.Layout(width="420px"))
        self.pool = W.ToggleButtons(options=["mean", "cls"], value=pool, description="pool",
                                    style=dict(button_width="60px"))
        self.epoch = W.SelectionSlider(options=[0], value=0, description="epoch", continuous_update=False)
        self.layer = W.IntSlider(value=0, min=0, max=0, description="layer", continuous_update=True)
        self.colour_by = W.Dropdown(options=["label"], value="label", description="colour by")
        self._wanted_colour = colour_by
        self.status = W.HTML()
        self.figure = go.FigureWidget(layout=dict(
            height=560, width=640, margin=dict(l=10, r=10, t=50, b=10), showlegend=False,
            xaxis=dict(showticklabels=False, zeroline=False, title="UMAP 1"),
            yaxis=dict(showticklabels=False, zeroline=False, title="UMAP 2"),
        ))
        self.image = W.Image(format="png", layout=W.Layout(width="160px", height="160px"))
        self.details = W.HTML("<i>hover over or click a point</i>")

        controls = W.VBox([self.run_picker, self.pool, self.epoch, self.layer, self.colour_by, self.status])
        side = W.VBox([W.HTML("<b>probe image</b>"), self.image, self.details],
                      layout=W.Layout(width="260px", padding="0 0 0 12px"))
        super().__init__([W.VBox([controls, self.figure]), side])

        self.run_picker.observe(lambda _: self.load(), "value")
        self.pool.observe(lambda _: self.load(), "value")
        self.epoch.observe(lambda _: self.draw(), "value")
        self.layer.observe(lambda _: self.draw(), "value")
        self.colour_by.observe(lambda _: self.recolour(), "value")
        self.load()

    # ---- data ----------------------------------------------------------------------------------

    @property
    def run(self) -> Run:
        return load_run(self.run_picker.value)

    def _layouts(self, run: Run, pool: str) -> Any:
        key = (str(run.path), pool)
        if key not in self._cache:
            self._cache[key] = self.layouter(run, pool=pool, **self.layout_kwargs)
        return self._cache[key]

    def load(self) -> None:
        """(Re)load the picked run's layouts and probe set, then reset the sliders and redraw."""
        from ..figures.explorer import colourings

        run = self.run
        self.status.value = f"<i>laying out {run.name} ({self.pool.value} pool)...</i>"
        self.layouts = self._layouts(run, self.pool.value)
        try:
            self.probe = run.probe()
        except FileNotFoundError:
            self.probe = None  # older runs: factors from the layouts, no images
        self.options = colourings(self.layouts, self.probe)
        self._busy = True  # one redraw at the end, not one per control
        try:
            epochs = self.layouts.epochs
            self.epoch.options = epochs
            self.epoch.value = epochs[-1]
            layers = self.layouts.layers
            if min(layers) > self.layer.max:  # keep min <= max at every moment
                self.layer.max = max(layers)
            self.layer.min, self.layer.max = min(layers), max(layers)
            self.layer.value = max(layers)
            names = [o.name for o in self.options]
            wanted = self._wanted_colour if self._wanted_colour in names else (names[0] if names else None)
            self.colour_by.options = names
            self.colour_by.value = wanted
        finally:
            self._busy = False
        self.status.value = (f"{len(self.layouts.ids)} probe images, epochs {', '.join(map(str, epochs))}, "
                             f"layers {min(layers)}..{max(layers)}")
        # Axes fixed over every layout of the run, so a point's motion on screen is its motion in the layout.
        stacked = np.concatenate([np.asarray(c) for c in self.layouts.coords.values()])
        lo, hi = np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0)
        pad = 0.05 * np.maximum(hi - lo, 1e-9)
        with self.figure.batch_update():
            self.figure.layout.xaxis.range = [float(lo[0] - pad[0]), float(hi[0] + pad[0])]
            self.figure.layout.yaxis.range = [float(lo[1] - pad[1]), float(hi[1] + pad[1])]
        self.draw()
        self.recolour()

    # ---- drawing -------------------------------------------------------------------------------

    def coords(self) -> np.ndarray:
        """N x 2 coordinates at the chosen epoch and layer (the nearest laid-out layer)."""
        epoch = self.epoch.value
        layers = sorted(l for e, l in self.layouts.coords if e == epoch)
        layer = min(layers, key=lambda l: abs(l - self.layer.value))
        return np.asarray(self.layouts.coords[(epoch, layer)])

    def draw(self) -> None:
        """Move the points to the chosen (epoch, layer) layout."""
        if self._busy or self.layouts is None:
            return
        xy = self.coords()
        with self.figure.batch_update():
            if not self.figure.data:
                self._add_trace()
            self.figure.data[0].x = xy[:, 0]
            self.figure.data[0].y = xy[:, 1]
            self.figure.layout.title.text = (f"{self.run.name}: epoch {self.epoch.value}, layer {self.layer.value} "
                                             f"({self.pool.value} pool)")

    def _add_trace(self) -> None:
        ids = np.asarray(self.layouts.ids).astype(int)
        self.figure.add_trace(go.Scatter(x=[], y=[], mode="markers", customdata=ids[:, None], name="probe",
                                         marker=dict(size=self.point_size, opacity=0.8, showscale=True,
                                                     colorbar=dict(len=0.8, thickness=14))))
        trace = self.figure.data[0]
        trace.on_click(self._on_point)
        trace.on_hover(self._on_point)

    def recolour(self) -> None:
        """Colour the points by the chosen label or factor (one colour per category, or a scale)."""
        if self._busy or self.layouts is None or not self.options:
            return
        option = next(o for o in self.options if o.name == self.colour_by.value)
        self._wanted_colour = option.name
        hover = [f"probe #{i}<br>{option.name}: {option.text(v)}" for i, v in zip(self.layouts.ids, option.values)]
        with self.figure.batch_update():
            if not self.figure.data:
                self._add_trace()
            trace = self.figure.data[0]
            trace.update({f"marker.{k}": v for k, v in option.marker().items()})
            trace.hovertext = hover
            trace.hovertemplate = "%{hovertext}<extra></extra>"

    # ---- the side panel ------------------------------------------------------------------------

    def _on_point(self, trace: Any, points: Any, state: Any) -> None:
        if points.point_inds:
            self.select_row(points.point_inds[0])

    def select_row(self, row: int) -> None:
        """Show the probe image of layout row ``row`` (what a click or hover on that point does)."""
        pid = int(self.layouts.ids[row])
        self.selected = pid
        probe = self.probe
        if probe is not None and "images" in probe:
            self.image.value = png_bytes(probe["images"][pid])
            rows = factor_rows(pid, probe.get("factors"), probe.get("factor_specs") or (),
                               None if probe.get("labels") is None else probe["labels"][pid], probe.get("classes"))
        else:  # no probe set saved: what the layouts carry
            rows = [("probe id", str(pid))] + [(o.name, o.text(o.values[row])) for o in self.options]
        self.details.value = rows_html(rows)


def layer_explorer(
    source: Run | str | Path,
    interactive: bool = True,
    *,
    epoch: int | None = None,
    pool: str = "mean",
    colour_by: str = "label",
    layouter: Layouter | None = None,
    **layout_kwargs: Any,
) -> LayerExplorer | StaticPanel:
    """The layer explorer for a run, or for every run under a runs directory (newest first shown).

    ``layout_kwargs`` go to :func:`~workbench.analysis.layouts.compute_layouts` (``method``, ``max_points``,
    ...); ``layouter`` replaces it (any ``(run, pool=..., **kwargs) -> Layouts``). With
    ``interactive=False``: the static figure of the first run at ``epoch`` (default: the last).
    """
    runs, start = resolve_runs(source)
    if interactive:
        return LayerExplorer(runs, start, pool=pool, colour_by=colour_by, layouter=layouter, **layout_kwargs)
    from ..figures.explorer import layer_explorer as static_explorer

    run = load_run(start)
    layouts = (layouter or _default_layouter)(run, pool=pool, **layout_kwargs)
    try:
        probe = run.probe()
    except FileNotFoundError:
        probe = None
    figure = static_explorer(layouts, epoch=epoch, colour_by=colour_by, probe=probe)
    return StaticPanel([figure], title=f"Layer explorer: {run.name}")
