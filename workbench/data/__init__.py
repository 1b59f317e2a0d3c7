"""Datasets as uint8 tensors with labels and ground-truth factors, and the DataModule that serves them.

``shapes`` (procedural, with factors at three levels of abstraction), scikit-learn's ``digits``,
MNIST / FashionMNIST (IDX files), CIFAR-10/100, STL-10, SVHN and any image folder, behind one
registry (:func:`load_dataset`); :class:`TensorDataModule` keeps a dataset on the training device
and shards batches by rank. May import only the core (config, errors, atomic writes)."""

from .base import Factor, ImageData, ImageSet
from .datamodule import DataInfo, TensorBatches, TensorDataModule, split_indices
from .registry import DATASETS, image_shape, load_dataset

__all__ = [
    "DATASETS", "DataInfo", "Factor", "ImageData", "ImageSet", "TensorBatches", "TensorDataModule",
    "image_shape", "load_dataset", "split_indices",
]
