"""Interactive panels for JupyterLab (ipywidgets 8 + plotly ``FigureWidget``).

The top layer: a panel builds its figures with :mod:`workbench.figures`, reads runs through
:mod:`workbench.runs` and :mod:`workbench.analysis`, and trains through :mod:`workbench.training`.

| panel | what it does |
|---|---|
| :func:`objective_toggles` | per registered objective a checkbox, target layers and a weight; the config it builds |
|  | (or its validation error); a Train button with live curves |
| :func:`live_loss_curves` | a Lightning callback whose figure grows at every logging interval |
| :func:`layer_explorer` | run picker, epoch and layer sliders, colour-by; hover or click a point: its image, factors |
| :func:`collapse_dashboard` | collapse heat-maps for the chosen metrics, spectra and decodability |

Every panel takes ``interactive``: with ``interactive=False`` (headless runs, HTML export) it
returns a :class:`StaticPanel` -- the static figures of :mod:`workbench.figures`, displayed when the
panel is a cell's result -- instead of the widget. A notebook can therefore end a cell with
``widgets.layer_explorer(RUNS_DIR, interactive=INTERACTIVE)`` and read well in both modes.

Each widget exposes its controls as attributes (``explorer.layer``, ``toggles.weights["mae"]``),
so code can drive it exactly as a person would: ``explorer.layer.value = 3`` moves the points.
"""

from .dashboard import CollapseDashboard, collapse_dashboard, collapse_metrics
from .explorer import LayerExplorer, layer_explorer, newest_run, resolve_runs, runs_with_embeddings
from .live import LiveLossCurves, curve_panel, live_loss_curves
from .static import StaticPanel
from .toggles import ObjectiveToggles, config_diff, objective_map, objective_toggles, parse_layers

__all__ = [
    "CollapseDashboard", "LayerExplorer", "LiveLossCurves", "ObjectiveToggles", "StaticPanel", "collapse_dashboard",
    "collapse_metrics", "config_diff", "curve_panel", "layer_explorer", "live_loss_curves", "objective_map",
    "newest_run", "objective_toggles", "parse_layers", "resolve_runs", "runs_with_embeddings",
]
