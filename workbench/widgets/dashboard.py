"""The collapse dashboard: is any layer of a run collapsing, and what does each layer still encode?

Three views of one run's diagnostics, all per layer: heat-maps of the chosen collapse metrics over
training (:func:`workbench.figures.collapse_heatmaps`), the covariance spectra
(:func:`workbench.figures.spectra`) and the label / factor decodability
(:func:`workbench.figures.decodability`). The metric picker, the pool and the epoch redraw them in
place; with ``interactive=False`` the three static figures are returned instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import ipywidgets as W
import plotly.graph_objects as go

from ..errors import WorkbenchError
from ..runs import Run, load_run
from .refill import message_figure, refill
from .static import StaticPanel

DEFAULT_METRICS = ("rankme", "effective_rank", "std_l2", "uniformity")


def collapse_metrics(run: Run) -> list[str]:
    """The metrics of the run's diagnostics that the heat-maps can show (per-layer scalars: every
    metric but the CKA columns and the coherence probes), guide metrics first."""
    from ..figures.layers import METRIC_GUIDE

    table = run.diagnostics
    present = set(table["metric"].astype(str)) if not table.empty else set()
    present = {m for m in present if not m.startswith(("cka/", "coherence/"))}
    guided = [m for m in METRIC_GUIDE if m in present]
    return guided + sorted(present - set(guided))


def _figure(build: Any, *args: Any, **kwargs: Any) -> go.Figure:
    """The figure ``build`` draws, or a message naming why it cannot be drawn."""
    try:
        return build(*args, **kwargs)
    except (WorkbenchError, FileNotFoundError, KeyError, ValueError) as exc:
        return message_figure(f"{getattr(build, '__name__', 'figure')}: {exc}")


class CollapseDashboard(W.VBox):
    """The dashboard panel (an ``ipywidgets.VBox``); see the module docstring.

    Controls: ``metrics`` (SelectMultiple), ``pool`` (ToggleButtons), ``epoch`` (SelectionSlider,
    for the spectra and the decodability). Figures: ``heatmaps``, ``spectra``, ``decodability``
    (``FigureWidget``\\ s).
    """

    def __init__(self, run: Run, metrics: Sequence[str] = DEFAULT_METRICS, pool: str = "mean"):
        self.run = run
        available = collapse_metrics(run)
        chosen = [m for m in metrics if m in available] or available[:4]
        epochs = sorted(int(e) for e in run.diagnostics["epoch"].unique()) or [0]
        self.metrics = W.SelectMultiple(options=available, value=chosen, description="metrics", rows=6)
        self.pool = W.ToggleButtons(options=["mean", "cls"], value=pool, description="pool",
                                    style=dict(button_width="60px"))
        self.epoch = W.SelectionSlider(options=epochs, value=epochs[-1], description="epoch", continuous_update=False)
        self.heatmaps = go.FigureWidget()
        self.spectra = go.FigureWidget()
        self.decodability = go.FigureWidget()
        help_text = W.HTML("<small>pick one or more metrics (ctrl/shift-click); the epoch applies to the "
                           "spectra and the decodability</small>")
        super().__init__([W.HBox([self.metrics, W.VBox([self.pool, self.epoch, help_text])]),
                          self.heatmaps, W.HBox([self.spectra, self.decodability])])
        self.metrics.observe(lambda _: self.draw_heatmaps(), "value")
        self.pool.observe(lambda _: self.draw(), "value")
        self.epoch.observe(lambda _: self.draw_epoch(), "value")
        self.draw()

    def draw(self) -> None:
        self.draw_heatmaps()
        self.draw_epoch()

    def draw_heatmaps(self) -> None:
        from ..figures.layers import collapse_heatmaps

        metrics = tuple(self.metrics.value) or DEFAULT_METRICS[:1]
        refill(self.heatmaps, _figure(collapse_heatmaps, self.run, metrics=metrics, pool=self.pool.value))

    def draw_epoch(self) -> None:
        from ..figures.layers import decodability, spectra

        epoch = self.epoch.value
        saved = self.run.embedding_epochs()
        spectrum_epoch = epoch if epoch in saved else (saved[-1] if saved else None)
        refill(self.spectra, _figure(spectra, self.run, epoch=spectrum_epoch, pool=self.pool.value))
        refill(self.decodability, _figure(decodability, self.run, epoch=epoch, pool=self.pool.value))
        for widget in (self.spectra, self.decodability):
            widget.layout.width = 620


def collapse_dashboard(
    run: Run | str | Path,
    interactive: bool = True,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    pool: str = "mean",
    epoch: int | None = None,
) -> CollapseDashboard | StaticPanel:
    """The collapse dashboard of one run; with ``interactive=False`` its three static figures."""
    run = run if isinstance(run, Run) else load_run(run)
    if interactive:
        return CollapseDashboard(run, metrics=metrics, pool=pool)
    from ..figures.layers import collapse_heatmaps, decodability, spectra

    return StaticPanel([collapse_heatmaps(run, metrics=tuple(metrics), pool=pool),
                        spectra(run, epoch=epoch, pool=pool), decodability(run, epoch=epoch, pool=pool)],
                       title=f"Collapse dashboard: {run.name}")
