"""2-D layouts (UMAP) of the probe embeddings, for every layer and saved epoch, aligned so a point
moves smoothly from one layer to the next and from one epoch to the next.

The interface below is what figures and widgets read; ``compute_layouts`` fills it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Layouts:
    """Aligned 2-D coordinates of the same probe points at several (epoch, layer) pairs.

    coords: (epoch, layer) -> N x 2 float32, the rows in the order of ``ids``.
    ids: N indices into the run's probe set (the same points in every layout).
    labels: N class indices or None; label_names: their names (or None).
    factors: N x F float array of ground-truth factors or None; factor_names: their F names.
    pool: which pooled embedding was laid out ("mean" or "cls").
    params: the parameters that produced the layouts (part of the cache key).
    """

    coords: dict[tuple[int, int], np.ndarray]
    ids: np.ndarray
    labels: np.ndarray | None = None
    label_names: list[str] | None = None
    factors: np.ndarray | None = None
    factor_names: list[str] = field(default_factory=list)
    pool: str = "mean"
    params: dict = field(default_factory=dict)

    @property
    def epochs(self) -> list[int]:
        return sorted({e for e, _ in self.coords})

    @property
    def layers(self) -> list[int]:
        return sorted({l for _, l in self.coords})
