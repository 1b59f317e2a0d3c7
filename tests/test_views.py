"""Tests of the batched, on-device views (workbench.views) and of the run config's views settings."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from workbench import views
from workbench.config import ViewsConfig
from workbench.randomness import make_generator
from workbench.views import (
    LUMA,
    AugmentSpec,
    augment,
    color_jitter,
    default_kernel_size,
    dino_specs,
    gaussian_blur,
    multi_crop,
    random_flip,
    random_grayscale,
    random_resized_crop,
    resized_crop,
    sample_crop_boxes,
    solarize,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def images(batch=16, channels=3, size=32, seed=0, device="cpu", dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, size, size, generator=g, dtype=dtype).to(device)


# Every random function as f(images, generator) -> tensor (or tuple of tensors).
RANDOM_FUNCTIONS = {
    "boxes": lambda x, g: sample_crop_boxes(len(x), 32, 32, generator=g, device=x.device),
    "random_resized_crop": lambda x, g: random_resized_crop(x, 24, generator=g),
    "random_flip": lambda x, g: random_flip(x, generator=g),
    "color_jitter": lambda x, g: color_jitter(x, generator=g),
    "random_grayscale": lambda x, g: random_grayscale(x, p=0.5, generator=g),
    "gaussian_blur": lambda x, g: gaussian_blur(x, generator=g),
    "solarize": lambda x, g: solarize(x, p=0.5, generator=g),
    "augment": lambda x, g: augment(x, AugmentSpec(blur=0.5, solarize=0.2), g),
    "multi_crop": lambda x, g: multi_crop(x, g, local_crops=2),
}


def flat(out):
    """All tensors of a (possibly nested) output, in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for item in out for t in flat(item)]


def same(a, b):
    ta, tb = flat(a), flat(b)
    return len(ta) == len(tb) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(ta, tb))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(RANDOM_FUNCTIONS))
def test_seeded_determinism_and_device(name, device):
    fn = RANDOM_FUNCTIONS[name]
    x = images(32, device=device)
    a = fn(x, make_generator(1, device))
    b = fn(x, make_generator(1, device))
    c = fn(x, make_generator(2, device))
    assert same(a, b), "same seed must give identical outputs"
    assert not same(a, c), "a different seed must give different outputs"
    for t in flat(a):
        assert t.device.type == torch.device(device).type
        if t.is_floating_point() and t.ndim == 4:
            assert t.min() >= 0 and t.max() <= 1


def test_make_generator():
    g = make_generator(3, "cpu")
    assert g.device.type == "cpu" and g.initial_seed() == 3
    assert torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=make_generator(3)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_generator_on_the_wrong_device_is_a_clear_error():
    with pytest.raises(ValueError, match="generator"):
        random_flip(images(device="cuda"), generator=make_generator(0, "cpu"))


# ---------------------------------------------------------------------------------------------- crops


@pytest.mark.parametrize("height,width", [(32, 32), (24, 40)])
def test_crop_boxes_follow_scale_ratio_and_stay_inside(height, width):
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    boxes = sample_crop_boxes(4096, height, width, scale, ratio, make_generator(0))
    assert boxes.shape == (4096, 4) and boxes.dtype == torch.float32
    x0, y0, w, h = boxes.unbind(1)
    eps = 1e-4
    assert (x0 >= -eps).all() and (y0 >= -eps).all()
    assert (x0 + w <= width + eps).all() and (y0 + h <= height + eps).all()
    area = w * h / (height * width)
    aspect = w / h
    inside = (
        (area >= scale[0] - 1e-5)
        & (area <= scale[1] + 1e-5)
        & (aspect >= ratio[0] - 1e-5)
        & (aspect <= ratio[1] + 1e-5)
    )
    assert inside.float().mean() >= 0.95
    # The rest is torchvision's fallback: the central crop with the aspect clipped into `ratio`.
    in_ratio = width / height
    fb_w = width if in_ratio <= ratio[1] else height * ratio[1]
    fb_h = height if in_ratio >= ratio[0] else width / ratio[0]
    fallback = torch.tensor([(width - fb_w) / 2, (height - fb_h) / 2, fb_w, fb_h])
    rest = boxes[~inside]
    assert torch.allclose(rest, fallback.expand_as(rest), atol=1e-4)
    # Offsets spread over the whole admissible range.
    assert x0.max() > 0.5 * width and y0.max() > 0.5 * height


def test_crop_boxes_fall_back_to_the_central_crop():
    # Every candidate is too wide for the image: torchvision's central crop of the nearest aspect.
    boxes = sample_crop_boxes(64, 30, 30, scale=(0.9, 1.0), ratio=(2.5, 3.0), generator=make_generator(0))
    expected = torch.tensor([0.0, (30 - 12) / 2, 30.0, 12.0])
    assert torch.allclose(boxes, expected.expand_as(boxes), atol=1e-5)


def test_crop_boxes_reject_bad_ranges():
    with pytest.raises(ValueError, match="scale"):
        sample_crop_boxes(4, 8, 8, scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="ratio"):
        sample_crop_boxes(4, 8, 8, ratio=(0.0, 1.0))


def test_crop_grid_is_the_affine_grid_of_the_box():
    boxes = sample_crop_boxes(8, 32, 24, generator=make_generator(0))
    x0, y0, w, h = boxes.unbind(1)
    theta = torch.zeros(8, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w / 24, (2 * x0 + w) / 24 - 1
    theta[:, 1, 1], theta[:, 1, 2] = h / 32, (2 * y0 + h) / 32 - 1
    expected = F.affine_grid(theta, [8, 1, 16, 16], align_corners=False)
    assert torch.allclose(views._crop_grid(boxes, 16, 32, 24, torch.float32), expected, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_resized_crop_full_box_and_pixel_aligned_box(device):
    x = images(4, device=device)
    full = torch.tensor([[0.0, 0.0, 32.0, 32.0]], device=device).expand(4, 4)
    assert torch.allclose(resized_crop(x, full, 32), x, atol=1e-5)
    # A pixel-aligned box at its own size is plain slicing: (x0, y0, w, h) = (4, 8, 16, 12).
    box = torch.tensor([[4.0, 8.0, 16.0, 16.0]], device=device).expand(4, 4)
    assert torch.allclose(resized_crop(x, box, 16), x[:, :, 8:24, 4:20], atol=1e-5)
    # Down-scaling a constant image stays constant (border padding, no dark edges).
    const = torch.full((2, 3, 32, 32), 0.7, device=device)
    crops = random_resized_crop(const, 8, generator=make_generator(0, device))
    assert crops.shape == (2, 3, 8, 8) and torch.allclose(crops, torch.full_like(crops, 0.7), atol=1e-6)


def test_random_resized_crop_shapes_channels_and_dtype():
    g = make_generator(0)
    assert random_resized_crop(images(5, 1), 12, generator=g).shape == (5, 1, 12, 12)
    out = random_resized_crop(images(5, dtype=torch.float64), 12, generator=g)
    assert out.dtype == torch.float64 and out.shape == (5, 3, 12, 12)


# --------------------------------------------------------------------------------------- photometric


def test_flip():
    x = images()
    assert torch.equal(random_flip(x, p=1.0, generator=make_generator(0)), torch.flip(x, dims=[-1]))
    assert torch.equal(random_flip(x, p=0.0, generator=make_generator(0)), x)
    out = random_flip(images(1000, size=4), p=0.5, generator=make_generator(0))
    src = images(1000, size=4)
    flipped = (out == src.flip(-1)).flatten(1).all(1)
    kept = (out == src).flatten(1).all(1)
    assert (flipped | kept).all() and 0.4 < flipped.float().mean() < 0.6


def test_grayscale():
    x = images()
    out = random_grayscale(x, p=1.0, generator=make_generator(0))
    luma = LUMA[0] * x[:, 0] + LUMA[1] * x[:, 1] + LUMA[2] * x[:, 2]
    for c in range(3):
        assert torch.allclose(out[:, c], luma, atol=1e-6)
    assert torch.equal(random_grayscale(x, p=0.0, generator=make_generator(0)), x)
    one = images(channels=1)
    assert torch.equal(random_grayscale(one, p=1.0, generator=make_generator(0)), one)


def test_solarize():
    x = images()
    out = solarize(x, p=1.0, threshold=0.3, generator=make_generator(0))
    assert torch.equal(out, torch.where(x >= 0.3, 1 - x, x))
    assert torch.equal(solarize(x, p=0.0, generator=make_generator(0)), x)


def test_blur():
    x = images()
    assert torch.allclose(gaussian_blur(x, p=1.0, sigma=(0.1, 0.1), generator=make_generator(0)), x, atol=1e-6)
    const = torch.full((4, 3, 32, 32), 0.37)
    out = gaussian_blur(const, p=1.0, sigma=(1.0, 2.0), kernel_size=7, generator=make_generator(0))
    assert torch.allclose(out, const, atol=1e-6) and torch.allclose(out.mean(), const.mean(), atol=1e-6)
    blurred = gaussian_blur(x, p=1.0, sigma=(2.0, 2.0), generator=make_generator(0))
    assert blurred.var() < 0.5 * x.var()
    assert torch.equal(gaussian_blur(x, p=0.0, generator=make_generator(0)), x)
    assert gaussian_blur(images(channels=1), p=1.0, generator=make_generator(0)).shape == (16, 1, 32, 32)
    with pytest.raises(ValueError, match="kernel_size"):
        gaussian_blur(x, kernel_size=4)


def test_blur_kernel_size_default():
    assert default_kernel_size(32, 32) == 3
    assert default_kernel_size(96, 96) == 11
    assert default_kernel_size(224, 224) == 23  # SimCLR's 10% of the side, odd
    assert default_kernel_size(1, 1) == 1


def test_per_sample_blur_matches_torchvision():
    tvf = pytest.importorskip("torchvision.transforms.functional")
    x = images(4, size=20)
    sigma = torch.tensor([0.3, 0.8, 1.5, 3.0])
    out = views._blur(x, sigma, 5)
    expected = torch.stack([tvf.gaussian_blur(x[i], [5, 5], [float(sigma[i])] * 2) for i in range(4)])
    assert torch.allclose(out, expected, atol=1e-6)


def test_colour_ops_match_torchvision():
    tvf = pytest.importorskip("torchvision.transforms.functional")
    x = images(6, size=12)
    shift = torch.tensor([-0.5, -0.25, -0.05, 0.0, 0.3, 0.5])
    hue = torch.stack([tvf.adjust_hue(x[i], float(shift[i])) for i in range(6)])
    assert torch.allclose(views._shift_hue(x, shift), hue, atol=1e-5)
    factor = torch.tensor([0.0, 0.5, 0.9, 1.0, 1.4, 2.0])
    gray = views._grayscale(x)
    sat = torch.stack([tvf.adjust_saturation(x[i], float(factor[i])) for i in range(6)])
    assert torch.allclose(views._blend(x, gray, factor), sat, atol=1e-6)
    con = torch.stack([tvf.adjust_contrast(x[i], float(factor[i])) for i in range(6)])
    assert torch.allclose(views._blend(x, gray.mean(dim=(1, 2, 3), keepdim=True), factor), con, atol=1e-6)
    # Gray pixels have no hue: a rotation leaves them unchanged.
    grey = gray.expand(-1, 3, -1, -1)
    assert torch.allclose(views._shift_hue(grey, shift), grey, atol=1e-6)


def test_color_jitter():
    x = images(64)
    out = color_jitter(x, 0.8, 0.8, 0.8, 0.5, p=1.0, generator=make_generator(0))
    assert out.min() >= 0 and out.max() <= 1 and not torch.equal(out, x)
    assert torch.equal(color_jitter(x, 0, 0, 0, 0, p=1.0, generator=make_generator(0)), x)
    assert torch.equal(color_jitter(x, p=0.0, generator=make_generator(0)), x)
    # Brightness alone: one factor per sample, within [0.6, 1.4], where nothing clips.
    out = color_jitter(x, 0.4, 0, 0, 0, p=1.0, generator=make_generator(0))
    ratio = torch.where((out < 0.999) & (x > 0.05), out / x, torch.nan).flatten(1)
    lo, hi = ratio.nan_to_num(10.0).amin(1), ratio.nan_to_num(-10.0).amax(1)
    assert torch.allclose(lo, hi, atol=1e-3) and (lo > 0.6 - 1e-4).all() and (hi < 1.4 + 1e-4).all()
    assert lo.std() > 0.05  # per-sample factors
    # One channel: saturation and hue are no-ops, brightness and contrast still apply.
    one = images(channels=1)
    assert torch.equal(color_jitter(one, 0, 0, 0.8, 0.5, p=1.0, generator=make_generator(0)), one)
    assert not torch.equal(color_jitter(one, p=1.0, generator=make_generator(0)), one)
    with pytest.raises(ValueError, match="hue"):
        color_jitter(x, hue=0.7)
    with pytest.raises(ValueError, match="p="):
        color_jitter(x, p=1.5)


def test_augment_and_spec_validation():
    spec = AugmentSpec(flip=1.0, jitter=1.0, grayscale=1.0, blur=1.0, solarize=1.0)
    for x in (images(), images(channels=1), images(dtype=torch.float64)):
        out = augment(x, spec, make_generator(0))
        assert out.shape == x.shape and out.dtype == x.dtype and out.min() >= 0 and out.max() <= 1
    identity = AugmentSpec(flip=0, jitter=0, grayscale=0, blur=0, solarize=0)
    x = images()
    assert torch.equal(augment(x, identity, make_generator(0)), x)
    with pytest.raises(ValueError, match="AugmentSpec.blur"):
        AugmentSpec(blur=2.0)
    with pytest.raises(ValueError, match="AugmentSpec.blur_sigma"):
        AugmentSpec(blur_sigma=(2.0, 1.0))


@pytest.mark.parametrize("device", DEVICES)
def test_multi_crop_shapes(device):
    x = images(8, device=device)
    g1, g2, local = dino_specs()
    assert (g1.blur, g2.blur, g2.solarize, local.blur) == (1.0, 0.1, 0.2, 0.5)
    g = make_generator(0, device)
    globals_, locals_ = multi_crop(
        x, g, global_crops=2, local_crops=4, local_size=16, global_specs=[g1, g2], local_spec=local
    )
    assert len(globals_) == 2 and len(locals_) == 4
    assert all(t.shape == (8, 3, 32, 32) and t.device.type == x.device.type for t in globals_)
    assert all(t.shape == (8, 3, 16, 16) and t.device.type == x.device.type for t in locals_)
    assert not torch.equal(globals_[0], globals_[1]) and not torch.equal(locals_[0], locals_[1])
    # Defaults: global = input size, local = half of it; zero local crops by default.
    globals_, locals_ = multi_crop(images(4, channels=1, size=28), make_generator(0), local_crops=3)
    assert [t.shape for t in globals_] == [(4, 1, 28, 28)] * 2 and [t.shape for t in locals_] == [(4, 1, 14, 14)] * 3
    globals_, locals_ = multi_crop(x, make_generator(0, device), global_crops=3, global_size=24)
    assert [t.shape[-1] for t in globals_] == [24] * 3 and locals_ == []


# ------------------------------------------------------------------------------------------- speed


def test_views_are_vectorised_over_the_batch():
    """No Python loop over images: a batch of 512 dispatches exactly as many torch ops as a batch of 8.

    Counting dispatched ops makes the property exact on any machine (a wall-clock bound on a shared
    2-core machine is not: the same call took 0.7-3.1 s under load)."""
    from op_count import dispatched_ops

    def ops(call, n: int) -> int:
        x, g = images(n), make_generator(0)
        return dispatched_ops(lambda: call(x, g))

    calls = {
        "random_resized_crop": lambda x, g: random_resized_crop(x, 32, generator=g),
        "augment": lambda x, g: augment(x, AugmentSpec(blur=1.0, solarize=0.5), g),
        "multi_crop": lambda x, g: multi_crop(x, g, local_crops=4, global_specs=list(dino_specs()[:2])),
    }
    for name, call in calls.items():
        small, large = ops(call, 8), ops(call, 512)
        assert small == large, f"{name}: {small} ops for 8 images, {large} for 512"


# ---------------------------------------------------------------------------- views from a run config

def test_config_local_size_is_half_the_image_in_whole_patches():
    from workbench.views import config_local_size

    v = ViewsConfig()
    # 32 / 2 = 16 = 2 patches of 8; 28 / 2 = 14 -> 3 patches of 4 = 12; 14 is 2 patches of 7
    assert [config_local_size(v, 32, 8), config_local_size(v, 28, 4), config_local_size(v, 28, 7)] == [16, 12, 14]
    assert config_local_size(v, 8, 8) == 8  # never below one patch
    assert config_local_size(ViewsConfig(local_size=20), 32, 8) == 20  # an explicit size wins


def test_config_multi_crop_is_multi_crop_with_the_config_settings():
    from workbench.views import config_augment_spec, config_multi_crop

    v = ViewsConfig(global_crops=2, local_crops=3, global_scale=[0.5, 1.0], local_scale=[0.2, 0.3], flip=0.1,
                    jitter=0.3, grayscale=0.4, blur=0.6, solarize=0.7)
    spec = config_augment_spec(v)
    assert (spec.flip, spec.jitter, spec.grayscale, spec.blur, spec.solarize) == (0.1, 0.3, 0.4, 0.6, 0.7)
    x = torch.rand(5, 3, 32, 32)
    got = config_multi_crop(x, torch.Generator().manual_seed(4), v, patch_size=8)
    want = multi_crop(x, torch.Generator().manual_seed(4), global_crops=2, global_size=32, global_scale=(0.5, 1.0),
                      local_crops=3, local_size=16, local_scale=(0.2, 0.3), global_specs=[spec, spec], local_spec=spec)
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        assert torch.equal(a, b)
    assert [len(got[0]), len(got[1])] == [2, 3]
    assert config_multi_crop(x, torch.Generator().manual_seed(4), v, patch_size=8, local=False)[1] == []


IDENTITY = {"flip": 0.0, "jitter": 0.0, "grayscale": 0.0, "blur": 0.0, "solarize": 0.0}


def test_config_defaults_are_the_pipeline_the_views_always_had():
    """The default fields give AugmentSpec's DINO / BYOL strengths with blur 0.2, and torchvision's
    crop aspect range, under the symmetric recipe (what every config got before these fields)."""
    from workbench.views import DEFAULT_RATIO, config_augment_spec, config_crop_specs

    v = ViewsConfig()
    assert v.recipe == "symmetric" and tuple(v.global_ratio) == tuple(v.local_ratio) == DEFAULT_RATIO == (0.75, 4 / 3)
    assert config_augment_spec(v) == AugmentSpec(blur=0.2)
    assert AugmentSpec(blur=0.2) == AugmentSpec(0.5, 0.8, 0.4, 0.4, 0.2, 0.1, 0.2, 0.2, (0.1, 2.0), 0.0)
    assert config_crop_specs(v) == ([AugmentSpec(blur=0.2)], AugmentSpec(blur=0.2))


def test_config_augment_spec_carries_every_strength():
    from workbench.views import config_augment_spec

    v = ViewsConfig(brightness=0.1, contrast=0.2, saturation=0.3, hue=0.05, blur_sigma=[0.5, 1.5], flip=0.25)
    spec = config_augment_spec(v)
    assert (spec.brightness, spec.contrast, spec.saturation, spec.hue, spec.blur_sigma, spec.flip) == \
        (0.1, 0.2, 0.3, 0.05, (0.5, 1.5), 0.25)


def test_dino_specs_replace_only_blur_and_solarize_of_the_base():
    base = AugmentSpec(flip=0.1, jitter=0.2, brightness=0.3, contrast=0.0, saturation=0.5, hue=0.0, grayscale=0.6,
                       blur=0.9, blur_sigma=(0.2, 0.4), solarize=0.9)
    first, second, local = dino_specs(base)
    # DINO's DataAugmentationDINO: GaussianBlur(1.0); GaussianBlur(0.1) + Solarization(0.2); GaussianBlur(0.5)
    assert [(s.blur, s.solarize) for s in (first, second, local)] == [(1.0, 0.0), (0.1, 0.2), (0.5, 0.0)]
    for spec in (first, second, local):
        assert dataclasses.replace(spec, blur=0.9, solarize=0.9) == base
    assert dino_specs() == dino_specs(AugmentSpec())


def test_config_crop_specs_of_the_dino_recipe():
    from workbench.views import config_augment_spec, config_crop_specs

    v = ViewsConfig(recipe="dino", brightness=0.2, hue=0.0, blur=0.7, solarize=0.6, blur_sigma=[0.3, 0.9])
    (first, second), local = config_crop_specs(v)
    assert [(s.blur, s.solarize) for s in (first, second, local)] == [(1.0, 0.0), (0.1, 0.2), (0.5, 0.0)]
    # every field but blur and solarize still applies
    assert all(s.brightness == 0.2 and s.hue == 0.0 and s.blur_sigma == (0.3, 0.9) for s in (first, second, local))
    assert (first, second, local) == dino_specs(config_augment_spec(v))
    with pytest.raises(ValueError, match="views.recipe='byol'"):
        config_crop_specs(ViewsConfig(recipe="byol"))


def test_config_multi_crop_follows_the_dino_recipe_and_the_ratios():
    from workbench.views import config_augment_spec, config_multi_crop

    v = ViewsConfig(recipe="dino", global_crops=3, local_crops=2, global_ratio=[0.5, 2.0], local_ratio=[1.0, 1.0])
    first, second, local = dino_specs(config_augment_spec(v))
    x = images(4)
    got = config_multi_crop(x, make_generator(7), v, patch_size=4)
    want = multi_crop(x, make_generator(7), global_crops=3, global_size=32, global_scale=(0.4, 1.0),
                      global_ratio=(0.5, 2.0), local_crops=2, local_size=16, local_scale=(0.1, 0.4),
                      local_ratio=(1.0, 1.0), global_specs=[first, second], local_spec=local)
    assert [t.shape for t in got[0] + got[1]] == [(4, 3, 32, 32)] * 3 + [(4, 3, 16, 16)] * 2
    assert all(torch.equal(a, b) for a, b in zip(got[0] + got[1], want[0] + want[1]))


def test_crop_ratio_fields_shape_the_crops():
    """A horizontal ramp (a pixel's value is its column): with area fraction 0.5 and aspect w / h = 2,
    a 32 x 32 crop box is 32 wide and 16 high, so every row of the crop is the full ramp; with aspect
    1/2 it is 16 wide and the rows are a stretched half of it."""
    from workbench.views import config_multi_crop

    ramp = (torch.arange(32.0) / 31).expand(2, 3, 32, 32).contiguous()
    wide = ViewsConfig(global_scale=[0.5, 0.5], global_ratio=[2.0, 2.0], local_crops=0, **IDENTITY)
    globals_, _ = config_multi_crop(ramp, make_generator(0), wide, patch_size=4, local=False)
    assert all(torch.allclose(g, ramp, atol=1e-5) for g in globals_)
    tall = ViewsConfig(global_scale=[0.5, 0.5], global_ratio=[0.5, 0.5], local_crops=0, **IDENTITY)
    globals_, _ = config_multi_crop(ramp, make_generator(0), tall, patch_size=4, local=False)
    span = [g[..., -1] - g[..., 0] for g in globals_]  # a 16 px window resampled to 32: (16 - 1) / 31 of the ramp
    assert all(torch.allclose(s, torch.full_like(s, 15.5 / 31), atol=1e-5) for s in span)
    # the local crops' ratio field, likewise: local crops of a quarter of the image at aspect 4 are
    # 32 wide, 8 high, resampled to 16 px -- every row samples the whole ramp at 16 points
    local = ViewsConfig(local_scale=[0.25, 0.25], local_ratio=[4.0, 4.0], local_crops=2, **IDENTITY)
    _, locals_ = config_multi_crop(ramp, make_generator(0), local, patch_size=4)
    expected = ((torch.arange(16.0) + 0.5) * 2 - 0.5) / 31  # output pixel i samples column 2 i + 0.5
    assert all(torch.allclose(t, expected.expand_as(t), atol=1e-5) for t in locals_)


def test_config_global_view_is_global_crop_index_of_the_recipe():
    from workbench.views import config_augment_spec, config_global_view

    x = images(4)
    for recipe in ("symmetric", "dino"):
        v = ViewsConfig(recipe=recipe, global_scale=[0.3, 0.9], global_ratio=[0.6, 1.6])
        specs = dino_specs(config_augment_spec(v))[:2] if recipe == "dino" else [config_augment_spec(v)] * 2
        for index in (0, 1, 2):
            got = config_global_view(x, make_generator(3), v, index)
            (want,), _ = multi_crop(x, make_generator(3), global_crops=1, global_scale=(0.3, 0.9),
                                    global_ratio=(0.6, 1.6), global_specs=[specs[index % 2]])
            assert torch.equal(got, want), (recipe, index)


def test_the_dino_preset_uses_the_dino_recipe_and_the_others_the_symmetric_one():
    from workbench.presets import PRESETS

    for name, preset in PRESETS.items():
        assert preset.overrides.get("views.recipe", "symmetric") == ("dino" if name == "dino" else "symmetric"), name


def test_the_per_sample_benchmark_follows_the_recipe_and_the_ratios():
    """The views benchmark's torchvision side makes the crops the batched side makes: each crop's
    blur and solarize probabilities under the recipe, and the configured aspect ranges."""
    pytest.importorskip("torchvision")
    from workbench.bench.views import PerSampleViews

    v = ViewsConfig(recipe="dino", local_crops=2, global_ratio=[0.5, 2.0], local_ratio=[1.0, 1.5])
    dataset = PerSampleViews(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8), v, patch_size=8)
    # each pipeline: to float, crop, flip, jitter, grayscale, blur, solarize
    steps = [pipeline.transforms for pipeline in dataset.transforms]
    assert [s[5].p for s in steps] == [1.0, 0.1, 0.5, 0.5] and [s[6].p for s in steps] == [0.0, 0.2, 0.0, 0.0]
    assert [tuple(s[1].ratio) for s in steps] == [(0.5, 2.0)] * 2 + [(1.0, 1.5)] * 2
