import pytest

from workbench.config import DataConfig, ShapesConfig
from workbench.data import image_shape, load_dataset
from workbench.errors import ConfigError


@pytest.mark.parametrize("config", [
    DataConfig(name="digits"),
    DataConfig(name="digits", image_size=16),
    DataConfig(name="shapes", shapes=ShapesConfig(num_images=50)),
    DataConfig(name="shapes", image_size=24, shapes=ShapesConfig(num_images=50)),
])
def test_image_shape_from_the_config_matches_the_loaded_images(config, tmp_path):
    data = load_dataset(config, cache_dir=tmp_path)
    c, side = image_shape(config)
    assert data.image_shape == (c, side, side)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        image_shape(DataConfig(name="imagenet"))
    assert info.value.field == "data.name" and "fashion_mnist" in str(info.value)


def test_shapes_label_selects_the_factor(tmp_path):
    data = load_dataset(DataConfig(name="shapes", label="count", shapes=ShapesConfig(num_images=60)), cache_dir=tmp_path)
    column = [f.name for f in data.factors].index("count")
    assert data.classes == ("1", "2", "3")
    assert (data.train.labels == data.train.factors[:, column].long()).all()
