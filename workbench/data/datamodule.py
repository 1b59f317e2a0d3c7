"""A DataModule for datasets that fit in memory: one uint8 tensor on the training device.

Small image datasets (tens of thousands of 32 x 32 images are a few tens of MB) need no worker
processes: they live on the device as one tensor, batches are index slices of it, and augmentation
runs there in batches. The splits are fixed by ``data.seed``; the batch order of epoch ``e`` is a
permutation seeded by ``(seed, e)``, so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import lightning as L
import torch

from ..config import DataConfig
from ..errors import ConfigError
from .base import Factor, ImageData, ImageSet
from .registry import load_dataset


@dataclass(frozen=True)
class DataInfo:
    """What the model must know about the data: plain values, saved in checkpoints."""

    name: str
    channels: int
    image_size: int
    num_classes: int
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    factors: tuple[Factor, ...] = ()
    has_labels: bool = True

    def to_dict(self) -> dict:
        return {
            "name": self.name, "channels": self.channels, "image_size": self.image_size,
            "num_classes": self.num_classes, "classes": list(self.classes),
            "mean": list(self.mean), "std": list(self.std), "has_labels": self.has_labels,
            "factors": [f.__dict__ | {"values": list(f.values), "range": None if f.range is None else list(f.range)}
                        for f in self.factors],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "DataInfo":
        factors = tuple(
            Factor(**{**f, "values": tuple(f["values"]), "range": None if f["range"] is None else tuple(f["range"])})
            for f in d.get("factors", [])
        )
        return cls(d["name"], d["channels"], d["image_size"], d["num_classes"], tuple(d["classes"]),
                   tuple(d["mean"]), tuple(d["std"]), factors, d.get("has_labels", True))


class TensorBatches:
    """Iterate over an in-memory :class:`ImageSet` in batches of dicts, sliced on its device.

    Under data parallelism each rank takes every ``world_size``-th batch of the same global
    permutation, so ranks never overlap and the union is the single-process epoch.
    """

    def __init__(
        self,
        data: ImageSet,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        epoch: Callable[[], int] = lambda: 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.data, self.batch_size, self.shuffle, self.seed = data, batch_size, shuffle, seed
        self.epoch, self.drop_last, self.rank, self.world_size = epoch, drop_last, rank, world_size
        self.index = torch.arange(len(data), device=data.images.device)

    def _num_global_batches(self) -> int:
        n = len(self.data)
        full, rest = divmod(n, self.batch_size)
        if self.drop_last and full >= self.world_size:
            # Every rank must take the same number of optimisation steps, or DDP waits forever.
            return full - full % self.world_size
        return full + (rest > 0)

    def __len__(self) -> int:
        return len(range(self.rank, self._num_global_batches(), self.world_size))

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        order = self.index
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch())
            order = self.index[torch.randperm(len(self.data), generator=g).to(self.index.device)]
        for b in range(self.rank, self._num_global_batches(), self.world_size):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            batch = {"images": self.data.images[idx], "index": idx}
            if self.data.labels is not None:
                batch["labels"] = self.data.labels[idx]
            if self.data.factors is not None:
                batch["factors"] = self.data.factors[idx]
            yield batch


def split_indices(n: int, fractions: list[float], seed: int) -> list[torch.Tensor]:
    """Random disjoint index sets of sizes round(f * n) (the last takes the rest), fixed by ``seed``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    sizes = [int(round(f * n)) for f in fractions]
    parts, start = [], 0
    for size in sizes:
        parts.append(perm[start : start + size])
        start += size
    parts.append(perm[start:])
    return parts


class TensorDataModule(L.LightningDataModule):
    """Train / val / test / probe splits of one dataset, resident on the training device.

    ``val`` is ``data.val_fraction`` of the training images; ``test`` is the official test split
    when the dataset has one, otherwise ``data.test_fraction`` of the images; ``probe`` is the first
    ``data.probe_size`` images of ``val`` (fixed, held out, used by diagnostics).
    """

    def __init__(self, config: DataConfig, cache_dir: str | Path | None = "data", order_seed: int = 0):
        super().__init__()
        self.config = config
        self.order_seed = order_seed  # the run's seed: batch order is training randomness
        self.cache_dir = cache_dir
        self.data: ImageData | None = None
        self.splits: dict[str, ImageSet] = {}
        self.device = torch.device("cpu")

    # -- loading (CPU, once) --------------------------------------------------------------------

    def prepare(self) -> "TensorDataModule":
        """Load and split the data on the CPU. Idempotent; called before the model is built."""
        if self.data is not None:
            return self
        c = self.config
        data = load_dataset(c, self.cache_dir)
        if data.test is None:
            train_idx, test_idx = split_indices(len(data.train), [1.0 - c.test_fraction], c.seed)
            train, test = data.train.subset(train_idx), data.train.subset(test_idx)
        else:
            train, test = data.train, data.test
        fit_idx, val_idx = split_indices(len(train), [1.0 - c.val_fraction], c.seed + 1)
        self.splits = {"train": train.subset(fit_idx), "val": train.subset(val_idx), "test": test}
        self.splits["probe"] = self.splits["val"].subset(torch.arange(min(c.probe_size, len(val_idx))))
        for split in ("train", "val", "test"):
            if len(self.splits[split]) == 0:
                raise ConfigError(
                    "data.val_fraction" if split == "val" else "data.test_fraction" if split == "test" else "data.val_fraction",
                    c.val_fraction if split != "test" else c.test_fraction,
                    f"leaves the {split} split of {data.name} ({len(data.train)} images) empty",
                )
        self.data = data
        return self

    @functools.cached_property
    def info(self) -> DataInfo:
        self.prepare()
        assert self.data is not None
        x = self.splits["train"].images[:20000].float() / 255.0
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
        c, h, _ = self.data.image_shape
        return DataInfo(
            name=self.data.name, channels=c, image_size=h, num_classes=self.data.num_classes,
            classes=self.data.classes, mean=tuple(mean.tolist()), std=tuple(std.tolist()),
            factors=self.data.factors, has_labels=self.data.train.labels is not None,
        )

    # -- Lightning hooks --------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        self.prepare()
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if device != self.device:
            self.splits = {k: v.to(device) for k, v in self.splits.items()}
            self.device = device

    def _world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def train_dataloader(self) -> TensorBatches:
        rank, world = self._world()
        return TensorBatches(self.splits["train"], self.config.batch_size, shuffle=True, seed=self.order_seed,
                             epoch=self._current_epoch, drop_last=True, rank=rank, world_size=world)

    def _eval_loader(self, split: str) -> TensorBatches:
        rank, world = self._world()
        return TensorBatches(self.splits[split], self.config.batch_size, shuffle=False, rank=rank, world_size=world)

    def val_dataloader(self) -> TensorBatches:
        return self._eval_loader("val")

    def test_dataloader(self) -> TensorBatches:
        return self._eval_loader("test")
