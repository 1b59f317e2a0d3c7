"""What a panel returns when ``interactive=False``: its static figures, shown when displayed.

A notebook cell that ends with a panel call shows the panel in both modes: the widget when
interactive, the static figures (and any text, such as a config) otherwise. Static figures need
no kernel, so they survive ``nbconvert --to html`` and papermill runs.
"""

from __future__ import annotations

import html
from typing import Iterable

import plotly.graph_objects as go


class StaticPanel(list):
    """A list of plotly figures, optionally preceded by a block of text.

    It is a plain list (``panel[0]`` is the first figure), so tests and notebooks can inspect the
    figures; in a notebook, displaying it displays the text and then every figure in turn.
    """

    def __init__(self, figures: Iterable[go.Figure], text: str = "", title: str = ""):
        super().__init__(figures)
        self.text = text
        self.title = title

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, display

        if self.title:
            display(HTML(f"<h4>{html.escape(self.title)}</h4>"))
        if self.text:
            display(HTML(f"<pre style='font-size:11px'>{html.escape(self.text)}</pre>"))
        for figure in self:
            display(figure)

    def __repr__(self) -> str:
        names = ", ".join(repr(f.layout.title.text or "untitled") for f in self)
        return f"StaticPanel([{names}])"
