"""Probe images and their factors, as the explorer's side panel shows them."""

from __future__ import annotations

import html
import io
from typing import Sequence

import numpy as np

from ..data.base import Factor


def enlarge(image: np.ndarray, side: int = 160) -> np.ndarray:
    """C x H x W uint8 -> H' x W' x 3 uint8, scaled up by an integer factor (nearest neighbour,
    so single pixels stay sharp) to about ``side`` pixels; grey images are repeated over RGB."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image: expected C x H x W, got shape {image.shape}")
    hwc = np.transpose(image, (1, 2, 0))
    if hwc.shape[2] == 1:
        hwc = np.repeat(hwc, 3, axis=2)
    scale = max(1, side // max(hwc.shape[:2]))
    return np.repeat(np.repeat(hwc, scale, axis=0), scale, axis=1).astype(np.uint8)


def png_bytes(image: np.ndarray, side: int = 160) -> bytes:
    """The enlarged image (see :func:`enlarge`) encoded as PNG, for an ``ipywidgets.Image``."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(enlarge(image, side)).save(buffer, format="PNG")
    return buffer.getvalue()


def factor_rows(
    index: int,
    factors: np.ndarray | None,
    specs: Sequence[Factor],
    label: int | None = None,
    classes: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """(name, readable value) pairs for probe image ``index``: the label first, then every factor."""
    rows = [("probe id", str(index))]
    if label is not None:
        name = classes[int(label)] if classes is not None and 0 <= int(label) < len(classes) else str(int(label))
        rows.append(("label", name))
    if factors is not None:
        for j, spec in enumerate(specs):
            rows.append((spec.name, spec.format(factors[index, j])))
    return rows


def rows_html(rows: Sequence[tuple[str, str]]) -> str:
    """A two-column HTML table of (name, value) rows."""
    body = "".join(f"<tr><td style='padding-right:8px'><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>"
                   for k, v in rows)
    return f"<table style='font-size:12px'>{body}</table>"
