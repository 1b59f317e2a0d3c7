"""Show a freshly built static figure inside an existing ``FigureWidget``.

Panels build their figures with the same functions as the static views (:mod:`workbench.figures`)
and pour them into a ``FigureWidget`` that stays on screen, so a control change redraws in place.
"""

from __future__ import annotations

import plotly.graph_objects as go


def refill(widget: go.FigureWidget, figure: go.Figure) -> go.FigureWidget:
    """Replace every trace and the whole layout of ``widget`` by those of ``figure`` (one message)."""
    with widget.batch_update():
        widget.data = []
        widget.add_traces(list(figure.data))
        widget.layout = figure.layout
    return widget


def message_figure(text: str, height: int = 160) -> go.Figure:
    """An empty figure carrying a message (what a panel shows when its data is missing)."""
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=13))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10))
    return fig
