"""Datasets as uint8 tensors with labels and ground-truth factors, and the DataModule that serves them."""

from .base import Factor, ImageData, ImageSet
from .datamodule import DataInfo, TensorBatches, TensorDataModule, split_indices
from .registry import DATASETS, image_shape, load_dataset

__all__ = [
    "DATASETS", "DataInfo", "Factor", "ImageData", "ImageSet", "TensorBatches", "TensorDataModule",
    "image_shape", "load_dataset", "split_indices",
]
