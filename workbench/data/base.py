"""Containers shared by every dataset: images as one uint8 tensor, labels, and ground-truth factors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

FactorKind = Literal["categorical", "continuous"]
FactorLevel = Literal["low", "mid", "high"]


@dataclass(frozen=True)
class Factor:
    """One ground-truth factor of variation that every image carries.

    Categorical factors are stored as integer codes ``0 .. len(values) - 1`` (as float32 in the
    factor matrix); continuous factors as their value, inside ``range``.
    """

    name: str
    kind: FactorKind
    level: FactorLevel
    description: str
    values: tuple[str, ...] = ()
    range: tuple[float, float] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.values)

    def format(self, value: float) -> str:
        """A stored value as a person reads it: the category name, or the number to 2 decimals."""
        if self.kind == "categorical":
            return self.values[int(round(float(value)))]
        return f"{float(value):.2f}"


@dataclass
class ImageSet:
    """A split of a dataset, held in memory.

    images:  uint8, N x C x H x W (channels first, values 0..255)
    labels:  int64, N (class indices), or None for unlabelled data
    factors: float32, N x F (one column per ``ImageData.factors`` entry), or None
    """

    images: torch.Tensor
    labels: torch.Tensor | None = None
    factors: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be a uint8 tensor N x C x H x W, got {self.images.dtype} "
                f"with shape {tuple(self.images.shape)}"
            )
        n = self.images.shape[0]
        for name in ("labels", "factors"):
            t = getattr(self, name)
            if t is not None and t.shape[0] != n:
                raise ValueError(f"{name} has {t.shape[0]} rows but images has {n}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, index: torch.Tensor) -> "ImageSet":
        return ImageSet(
            self.images[index],
            None if self.labels is None else self.labels[index],
            None if self.factors is None else self.factors[index],
        )

    def to(self, device: torch.device | str) -> "ImageSet":
        return ImageSet(
            self.images.to(device),
            None if self.labels is None else self.labels.to(device),
            None if self.factors is None else self.factors.to(device),
        )


@dataclass
class ImageData:
    """A whole dataset: its training split, its official test split when it has one, and metadata."""

    name: str
    train: ImageSet
    test: ImageSet | None = None
    classes: tuple[str, ...] = ()
    factors: tuple[Factor, ...] = field(default_factory=tuple)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)
