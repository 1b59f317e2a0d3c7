"""Static plotly figures: they need no kernel and survive export to HTML (``wb.plots`` is this package).

They read run directories (:mod:`workbench.runs`) and the analysis helpers (:mod:`workbench.analysis`);
widgets and the CLI import them, never the other way round.

Every slider and menu is plotly's own (its steps carry all the data), so a notebook exported with
``nbconvert --to html`` stays explorable. Call :func:`use_notebook_renderer` once in a notebook so
figures are embedded as HTML with plotly.js inline; the default ``plotly_mimetype`` renderer is
dropped by ``nbconvert --to html``.

- :func:`layer_explorer`, :func:`epoch_explorer`: the probe set's 2-D layouts, a slider over layers
  (or epochs), coloured by the label or any factor;
- :func:`collapse_heatmaps`: collapse metrics per layer and epoch;
- :func:`spectra`: the covariance eigenvalue spectrum of every layer;
- :func:`decodability`: label and factor probe scores per layer;
- :func:`cka`: layer x layer linear CKA;
- :func:`loss_curves`, :func:`training_curves`: loss terms per objective and their schedules; an
  overview of losses, accuracies and monitors (each on its own axis);
- :func:`compare_runs`, :func:`metric_by_layer`: several runs, seeds averaged into bands;
- :func:`sample_grid`: images titled with their factors;
- :mod:`.report`: all of them for one run or several as one self-contained HTML page, and
  :func:`~workbench.figures.report.config_diff`, what a config changes from its preset.

A figure whose data is missing raises :class:`FigureDataError` naming the run, the file and why.
"""

from .common import FigureDataError
from .compare import compare_runs, group_by_seed, metric_by_layer
from .curves import loss_curves, training_curves
from .explorer import epoch_explorer, layer_explorer
from .layers import METRIC_GUIDE, cka, collapse_heatmaps, decodability, spectra
from .samples import sample_grid, use_notebook_renderer

__all__ = [
    "FigureDataError", "METRIC_GUIDE", "cka", "collapse_heatmaps", "compare_runs", "decodability", "epoch_explorer",
    "group_by_seed", "layer_explorer", "loss_curves", "metric_by_layer", "sample_grid", "spectra", "training_curves",
    "use_notebook_renderer",
]
