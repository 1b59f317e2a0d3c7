"""Name -> dataset, and the native image shape of each (so a config is checked without loading)."""

from __future__ import annotations

from pathlib import Path

from ..config import DataConfig
from ..errors import ConfigError, check_one_of
from .base import ImageData, ImageSet

# (channels, side) before any resize; None: known only after reading (image_folder needs image_size).
NATIVE_SHAPES: dict[str, tuple[int, int] | None] = {
    "shapes": None,  # from data.shapes.image_size
    "digits": (1, 8),
    "mnist": (1, 28),
    "fashion_mnist": (1, 28),
    "cifar10": (3, 32),
    "cifar100": (3, 32),
    "stl10": (3, 96),
    "svhn": (3, 32),
    "image_folder": None,  # from data.image_size
}
DATASETS = tuple(NATIVE_SHAPES)


def image_shape(config: DataConfig) -> tuple[int, int]:
    """(channels, side) of the images the model will see, from the config alone."""
    if config.name not in NATIVE_SHAPES:
        check_one_of("data.name", config.name, DATASETS)
    if config.name == "shapes":
        native = (3, config.shapes.image_size)
    elif config.name == "image_folder":
        if config.image_size is None:
            raise ConfigError("data.image_size", None, "an integer side for image_folder data (images are resized to it)")
        native = (3, config.image_size)
    else:
        native = NATIVE_SHAPES[config.name]
    return native[0], config.image_size or native[1]


def load_dataset(config: DataConfig, cache_dir: str | Path | None = "data") -> ImageData:
    """Load (or generate) the dataset a config names, resized to ``config.image_size`` if set."""
    if config.name == "shapes":
        from .shapes import ShapesParams, load_shapes

        s = config.shapes
        params = ShapesParams(
            num_images=s.num_images, image_size=s.image_size, max_objects=s.max_objects,
            noise_max=s.noise_max, seed=config.seed,
        )
        data = load_shapes(params, cache_dir=cache_dir, label=config.label)
        if config.image_size is not None:  # real loaders resize while reading; shapes here
            from .real import resize_images

            data.train = ImageSet(resize_images(data.train.images, config.image_size), data.train.labels,
                                  data.train.factors)
    else:
        from .real import REAL_DATASETS

        check_one_of("data.name", config.name, REAL_DATASETS)
        data = REAL_DATASETS[config.name](root=config.root, download=config.download, image_size=config.image_size)
    return data
