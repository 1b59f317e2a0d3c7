"""Static plotly figures: they need no kernel and survive export to HTML.

The figures live in :mod:`workbench.figures` (one module per family); this module is the name
notebooks use: ``wb.plots.layer_explorer(...)``, ``wb.plots.collapse_heatmaps(run)``, ...
Call :func:`use_notebook_renderer` once in a notebook so figures are embedded as HTML with plotly.js
inline; the default ``plotly_mimetype`` renderer is dropped by ``nbconvert --to html``.
"""

from .figures import *  # noqa: F401,F403 - the public figure functions
from .figures import __all__  # noqa: F401
from .figures.samples import _to_rgb  # noqa: F401 - kept importable from its old home
