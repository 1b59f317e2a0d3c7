"""Images as figures: a grid of samples titled with their factors, and the notebook renderer that
keeps every figure in an exported HTML page."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from ..data.base import Factor


def use_notebook_renderer() -> None:
    """Render figures in notebooks as mimetype + inline HTML (plotly.js embedded once, offline)."""
    pio.renderers.default = "plotly_mimetype+notebook"


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """C x H x W uint8 -> H x W x 3 uint8 (grey images repeated over three channels)."""
    hwc = np.transpose(image, (1, 2, 0))
    return np.repeat(hwc, 3, axis=2) if hwc.shape[2] == 1 else hwc


def sample_grid(
    images: np.ndarray | "torch.Tensor",  # noqa: F821 - any array-like N x C x H x W uint8
    factors: np.ndarray | "torch.Tensor | None" = None,  # noqa: F821
    factor_specs: Sequence[Factor] = (),
    labels: Sequence[str] | None = None,
    show: Sequence[str] | None = None,
    cols: int = 8,
    title: str = "Samples",
) -> go.Figure:
    """A grid of images titled with their factors (or labels); hovering shows every factor.

    show: which factors to put in the titles, two per line (default: up to four categorical ones);
    hover text always lists them all.
    """
    images = np.asarray(images)
    n = images.shape[0]
    rows = math.ceil(n / cols)
    specs = list(factor_specs)
    if show is None:
        show = [f.name for f in specs if f.kind == "categorical"][:4]
    by_name = {f.name: i for i, f in enumerate(specs)}
    factors = None if factors is None else np.asarray(factors)

    titles, hovers = [], []
    for i in range(n):
        if factors is not None and specs:
            values = {f.name: f.format(factors[i, j]) for j, f in enumerate(specs)}
            shown = [values[name] for name in show if name in by_name]
            titles.append("<br>".join(" ".join(shown[i : i + 2]) for i in range(0, len(shown), 2)))
            hovers.append("<br>".join(f"{k}: {v}" for k, v in values.items()))
        else:
            titles.append("" if labels is None else str(labels[i]))
            hovers.append(titles[-1])

    lines = max((t.count("<br>") + 1 for t in titles), default=1)
    row_height = 120 + 14 * lines  # image plus its title lines, in pixels
    height = rows * row_height + 60
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=min(0.3, (14 * lines + 6) / height) if rows > 1 else 0.0)
    for i in range(n):
        rgb = _to_rgb(images[i])
        fig.add_trace(
            go.Image(z=rgb, hovertemplate=f"{hovers[i]}<extra></extra>", name=f"#{i}"),
            row=i // cols + 1, col=i % cols + 1,
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=9)
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=60 + 14 * lines, b=10))
    return fig
