import numpy as np
import torch

from workbench import plots
from workbench.data.shapes import ShapesParams, load_shapes


def test_sample_grid_has_one_image_per_sample_with_every_factor_on_hover():
    data = load_shapes(ShapesParams(num_images=20), cache_dir=None)
    fig = plots.sample_grid(data.train.images[:10].numpy(), data.train.factors[:10].numpy(), data.factors, cols=4)
    images = [t for t in fig.data if t.type == "image"]
    assert len(images) == 10
    np.testing.assert_array_equal(images[3].z, data.train.images[3].permute(1, 2, 0).numpy())
    first = data.train.factors[0]
    shape = data.factors[3].values[int(first[3])]
    assert f"shape: {shape}" in images[0].hovertemplate and "count: " in images[0].hovertemplate
    assert shape in fig.layout.annotations[0].text


def test_sample_grid_repeats_grey_images_over_rgb():
    images = torch.arange(2 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4).numpy()
    fig = plots.sample_grid(images, labels=["a", "b"], cols=2)
    z = np.asarray(fig.data[1].z)
    assert z.shape == (4, 4, 3) and (z[..., 0] == z[..., 2]).all() and z[0, 1, 0] == 17
    assert [a.text for a in fig.layout.annotations] == ["a", "b"]
