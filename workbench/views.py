"""Batched, on-device views for self-supervised objectives.

Every function here takes a whole batch (``B x C x H x W`` float images in ``[0, 1]``, ``C`` = 1 or
3) and draws *per-sample* randomness from a ``torch.Generator`` living on the images' device. There
is no Python loop over images -- only over a handful of crops or ops -- so a batch of
views costs a few kernel launches on a GPU and never waits for a CPU data loader. Given the
generator state every output is deterministic; outputs stay in ``[0, 1]``.

Semantics follow torchvision's tensor functionals (``transforms.v1``) and DINO's recipe (Caron et
al. 2021, ``main_dino.py: DataAugmentationDINO``); the few deliberate differences are named where
they occur:

* crop boxes are continuous (sub-pixel) rather than rounded to whole pixels, so the area fraction
  is exact even on 32 px images, and crops are resampled bilinearly (DINO uses bicubic) without
  anti-aliasing;
* colour jitter applies its four ops in a fixed order (brightness, contrast, saturation, hue)
  instead of a random permutation per call.

Token masks (MAE, I-JEPA) live in :mod:`workbench.masks`; the generator and the argument checks
both share in :mod:`workbench.randomness`. ``config_*`` functions turn a run's ``views`` settings
(:class:`~workbench.config.ViewsConfig`) into crops: the one place training, diagnostics and the
benchmarks make them.

Typical use::

    g = make_generator(0, images.device)  # from workbench.randomness
    g1, g2, loc = dino_specs()
    globals_, locals_ = multi_crop(images, g, local_crops=4, global_specs=[g1, g2], local_spec=loc)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import VIEW_RECIPES
from .randomness import check_interval, check_prob, uniform

__all__ = [
    "LUMA",
    "DEFAULT_RATIO",
    "default_kernel_size",
    "sample_crop_boxes",
    "resized_crop",
    "random_resized_crop",
    "random_flip",
    "color_jitter",
    "random_grayscale",
    "gaussian_blur",
    "solarize",
    "AugmentSpec",
    "augment",
    "dino_specs",
    "multi_crop",
    "config_augment_spec",
    "config_crop_specs",
    "config_local_size",
    "config_multi_crop",
    "config_global_view",
]

#: ITU-R 601-2 luma weights, as torchvision's ``rgb_to_grayscale`` (and PIL's ``convert("L")``).
LUMA = (0.2989, 0.587, 0.114)


# --------------------------------------------------------------------------------------------------
# argument helpers


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        got = f"{images.dtype} of shape {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images)
        raise ValueError(f"expected float images of shape B x C x H x W with values in [0, 1], got {got}")


def _applied(batch: int, p: float, generator, device) -> torch.Tensor:
    """B x 1 x 1 x 1 booleans: which samples an op with probability ``p`` touches."""
    return (uniform(batch, generator, device) < p).view(batch, 1, 1, 1)


def _select(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``torch.where(mask, new, old)`` for finite images, as ``lerp(old, new, mask)``.

    A 0/1 weight makes ``lerp`` exact (it evaluates ``old + 0 * d`` or ``new - d * 0``), and on CPU
    it runs about four times faster than a broadcast ``where``; on CUDA both are one kernel.
    """
    return torch.lerp(old, new, mask.to(old.dtype))


# --------------------------------------------------------------------------------------------------
# crops


def sample_crop_boxes(
    batch: int,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Random-resized-crop boxes, ``B x 4`` float ``(x0, y0, w, h)`` in pixels (edges, not centres).

    Follows torchvision's ``RandomResizedCrop.get_params``: area fraction uniform in ``scale``,
    aspect ratio ``w / h`` log-uniform in ``ratio``, offsets uniform so the box lies inside the image;
    up to 10 attempts, then the central crop of the in-range aspect closest to the image's. Here the
    10 attempts are drawn at once for every sample and the first valid one is taken (no loop), and
    sizes and offsets are continuous rather than rounded to whole pixels: on 32 px images rounding
    would move the area fraction by several percent, and :func:`resized_crop` samples sub-pixel
    boxes anyway.
    """
    scale = check_interval(scale, "scale", 0.0, 1.0)
    ratio = check_interval(ratio, "ratio")
    if batch < 0 or height < 1 or width < 1:
        raise ValueError(f"need batch >= 0 and a positive image size, got batch={batch}, {height} x {width}")
    attempts = 10
    u = uniform((batch, attempts + 1, 2), generator, device)  # 10 x (scale, ratio), then the offsets
    area = height * width * (scale[0] + (scale[1] - scale[0]) * u[:, :attempts, 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, :attempts, 1])
    w, h = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    slack = 1e-5  # float round-off of sqrt at scale 1, aspect 1 must not reject the full image
    valid = (w <= width * (1 + slack)) & (h <= height * (1 + slack))
    first = valid.to(torch.uint8).argmax(dim=1, keepdim=True)  # argmax returns the first maximum
    w = w.gather(1, first).squeeze(1).clamp(max=width)
    h = h.gather(1, first).squeeze(1).clamp(max=height)

    # torchvision's fallback: the central crop with the aspect ratio clipped into `ratio`.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fallback_w, fallback_h = float(width), width / ratio[0]
    elif in_ratio > ratio[1]:
        fallback_w, fallback_h = height * ratio[1], float(height)
    else:
        fallback_w, fallback_h = float(width), float(height)
    found = valid.any(dim=1)
    w = torch.where(found, w, torch.full_like(w, fallback_w))
    h = torch.where(found, h, torch.full_like(h, fallback_h))
    x0 = torch.where(found, u[:, attempts, 0] * (width - w), (width - w) / 2)
    y0 = torch.where(found, u[:, attempts, 1] * (height - h), (height - h) / 2)
    return torch.stack([x0, y0, w, h], dim=1)


def _box_axes(boxes: torch.Tensor, size: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised sampling coordinates ``(xs, ys)``, each ``... x size``, of the output pixel centres.

    With ``align_corners=False`` normalised -1 is the left edge of the image and +1 the right edge,
    so output pixel ``i`` of the box ``[x0, x0 + w]`` samples ``2 (x0 + w (i + 1/2) / size) / W - 1``
    -- exactly the grid ``F.affine_grid`` makes for the scale-and-shift ``theta`` of the box
    (``[[w / W, 0, (2 x0 + w) / W - 1], [0, h / H, (2 y0 + h) / H - 1]]``), built here from two
    vectors instead of a batched matrix product.
    """
    x0, y0, w, h = boxes.to(torch.float32).unbind(dim=-1)
    t = (torch.arange(size, device=boxes.device, dtype=torch.float32) + 0.5) / size
    xs = (x0.unsqueeze(-1) + w.unsqueeze(-1) * t) * (2.0 / width) - 1.0
    ys = (y0.unsqueeze(-1) + h.unsqueeze(-1) * t) * (2.0 / height) - 1.0
    return xs, ys


def _crop_grid(boxes: torch.Tensor, size: int, height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    """``... x size x size x 2`` (x, y) sampling grid of the boxes ``... x 4`` for ``grid_sample``."""
    xs, ys = _box_axes(boxes, size, height, width)
    shape = xs.shape[:-1] + (size, size)
    return torch.stack([xs.unsqueeze(-2).expand(shape), ys.unsqueeze(-1).expand(shape)], dim=-1).to(dtype)


def _sample(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    # Border padding: sample points within half a pixel of an edge must not blend in black.
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Cut each image's box (``B x 4`` ``(x0, y0, w, h)`` pixels) and resize it to ``size x size``.

    One ``grid_sample`` (bilinear, ``align_corners=False``, border padding) over the whole batch on
    the affine grid of each box -- the grid ``F.affine_grid`` builds for a scale-and-shift ``theta``,
    made separably (see :func:`_box_axes`). The full-image box at the input size reproduces the
    image. Like torchvision's ``antialias=False`` path, strong down-scaling aliases; crops of small
    images are mostly up-scaled.
    """
    _check_images(images)
    if boxes.shape != (images.shape[0], 4):
        raise ValueError(f"boxes must be B x 4 = {images.shape[0]} x 4, got {tuple(boxes.shape)}")
    grid = _crop_grid(boxes.to(images.device), int(size), images.shape[-2], images.shape[-1], images.dtype)
    return _sample(images, grid)


def random_resized_crop(
    images: torch.Tensor,
    size: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """torchvision's ``RandomResizedCrop(size, scale, ratio)`` with an independent box per sample."""
    _check_images(images)
    b, _, h, w = images.shape
    boxes = sample_crop_boxes(b, h, w, scale, ratio, generator, images.device)
    return resized_crop(images, boxes, size)


# --------------------------------------------------------------------------------------------------
# photometric ops (and the flip)


def random_flip(images: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Horizontal flip of each sample with probability ``p`` (``RandomHorizontalFlip``)."""
    _check_images(images)
    if check_prob(p, "p") == 0.0:
        return images
    return _select(_applied(len(images), p, generator, images.device), images.flip(-1), images)


def _grayscale(images: torch.Tensor) -> torch.Tensor:
    """B x 1 x H x W luma of RGB images (ITU-R 601-2, as torchvision); 1-channel images as they are."""
    if images.shape[1] == 1:
        return images
    r, g, b = images.unbind(dim=1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def _blend(images: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend``: ``factor * img + (1 - factor) * other``, clipped to [0, 1]
    (computed as ``other + factor * (img - other)``, equal up to float rounding)."""
    factor = factor.view(-1, 1, 1, 1).to(images.dtype)
    return (images - other).mul_(factor).add_(other).clamp_(0.0, 1.0)


def _shift_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of RGB images by ``shift`` (B, in turns), as torchvision's ``adjust_hue``.

    A hue rotation keeps value V = max and chroma C = max - min, so the round trip through HSV
    collapses to a closed form on the hue H in sextants [0, 6): with ``t_c = clip(|H - c| - 1, 0, 1)``,
    ``R = min + C t_3``, ``G = V - C t_2``, ``B = V - C t_4`` -- a few elementwise ops, one ``mod``
    on a single channel, no gather.
    """
    r, g, b = images.unbind(dim=1)
    value = images.amax(dim=1)
    low = images.amin(dim=1)
    chroma = value - low
    # Hue in sextants with torchvision's _rgb2hsv branch priority (max at r, else g, else b); gray
    # pixels (chroma 0) get hue 0 as there. Masks times values rather than torch.where, which is
    # several times slower on CPU.
    inv = 1.0 / chroma.clamp_min(torch.finfo(images.dtype).tiny)
    is_r = value == r
    is_g = (value == g) & ~is_r
    is_b = ~(is_r | is_g)
    hue6 = is_r * ((g - b) * inv) + is_g * ((b - r) * inv + 2.0) + is_b * ((r - g) * inv + 4.0)
    hue6 = torch.remainder(hue6 + 6 * shift.view(-1, 1, 1).to(images.dtype), 6.0)

    def ramp(centre: float) -> torch.Tensor:  # C * t_c
        return (hue6 - centre).abs_().sub_(1.0).clamp_(0.0, 1.0).mul_(chroma)

    # The centres are Python numbers: a tensor of constants made here would be a blocking
    # host-to-device copy on every call.
    return torch.stack([low + ramp(3.0), value - ramp(2.0), value - ramp(4.0)], dim=1)


def _jitter_range(value, name: str, center: float, bound: float | None = None) -> tuple[float, float] | None:
    """torchvision's ``ColorJitter._check_input``: ``v`` means ``[max(0, c - v), c + v]``; a pair is
    taken as is; a range collapsed on the centre (a strength of 0) disables the op (None)."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name}={value!r} is invalid: a jitter strength must be non-negative")
        lo, hi = center - value, center + value
        if bound is None:
            lo = max(lo, 0.0)
    else:
        lo, hi = check_interval(value, name, -math.inf, math.inf)
    if bound is not None and not (-bound <= lo <= hi <= bound):
        raise ValueError(f"{name}={value!r} is invalid: the range must lie within [{-bound}, {bound}]")
    if bound is None and lo < 0:
        raise ValueError(f"{name}={value!r} is invalid: factors must be non-negative")
    return None if lo == hi == center else (lo, hi)


def color_jitter(
    images: torch.Tensor,
    brightness: float | tuple[float, float] = 0.4,
    contrast: float | tuple[float, float] = 0.4,
    saturation: float | tuple[float, float] = 0.2,
    hue: float | tuple[float, float] = 0.1,
    p: float = 0.8,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``RandomApply([ColorJitter(brightness, contrast, saturation, hue)], p)`` with per-sample factors.

    Factors follow torchvision: brightness, contrast and saturation uniform in
    ``[max(0, 1 - s), 1 + s]``, hue shift uniform in ``[-h, h]`` turns (h <= 0.5); each op is a
    clipped blend with black, the image's mean luma, or its grayscale. The ops run in a fixed order
    (brightness, contrast, saturation, hue) where torchvision permutes them at random per call;
    an op with strength 0 is skipped (so all-zero strengths are the identity). On 1-channel images
    saturation and hue are no-ops, as in torchvision, and contrast blends with the mean intensity.
    """
    _check_images(images)
    ranges = (
        _jitter_range(brightness, "brightness", 1.0),
        _jitter_range(contrast, "contrast", 1.0),
        _jitter_range(saturation, "saturation", 1.0),
        _jitter_range(hue, "hue", 0.0, bound=0.5),
    )
    if check_prob(p, "p") == 0.0 or all(r is None for r in ranges):
        return images
    u = uniform((len(images), 5), generator, images.device)  # apply?, then one factor per op
    factors = [None if r is None else r[0] + (r[1] - r[0]) * u[:, i + 1] for i, r in enumerate(ranges)]
    b, c, s, h = factors
    rgb = images.shape[1] == 3
    out = images
    if b is not None:
        out = (out * b.view(-1, 1, 1, 1).to(out.dtype)).clamp_(0.0, 1.0)  # blend with black
    if c is not None:
        out = _blend(out, _grayscale(out).mean(dim=(1, 2, 3), keepdim=True), c)
    if s is not None and rgb:
        out = _blend(out, _grayscale(out), s)
    if h is not None and rgb:
        out = _shift_hue(out, h)
    return _select((u[:, 0] < p).view(-1, 1, 1, 1), out, images)


def random_grayscale(images: torch.Tensor, p: float = 0.2, generator: torch.Generator | None = None) -> torch.Tensor:
    """``RandomGrayscale(p)``: ITU-R 601-2 luma copied to all three channels; 1-channel images pass."""
    _check_images(images)
    if check_prob(p, "p") == 0.0 or images.shape[1] == 1:
        return images
    gray = _grayscale(images).expand_as(images)
    return _select(_applied(len(images), p, generator, images.device), gray, images)


def default_kernel_size(height: int, width: int) -> int:
    """Odd blur kernel of about 10% of the image side (SimCLR/BYOL), at least 3, at most what
    reflect padding allows (``2 * side - 1``)."""
    side = min(height, width)
    k = max(3, int(round(0.1 * side)) | 1)
    return min(k, 2 * side - 1)


def _blur(images: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Gaussian blur with one sigma per sample: reflect padding and torchvision's 1-D kernel
    (``exp(-x^2 / 2 sigma^2)`` on ``x = -(k-1)/2 .. (k-1)/2``, normalised), applied separably.

    The batch is folded into channels (``1 x B*C x H x W``) so that a single grouped convolution
    per direction gives every image its own kernel.
    """
    b, c, height, width = images.shape
    half = (kernel_size - 1) / 2
    x = torch.linspace(-half, half, kernel_size, device=images.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma.to(torch.float32).view(-1, 1)) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).to(images.dtype).repeat_interleave(c, dim=0)  # B*C x k
    pad = kernel_size // 2
    folded = F.pad(images.reshape(1, b * c, height, width), (pad, pad, pad, pad), mode="reflect")
    # autocast would run these convolutions in bf16 and return bf16 images, which `_select` cannot
    # mix with the float32 originals: views stay in the images' dtype under mixed precision
    with torch.autocast(images.device.type, enabled=False):
        folded = F.conv2d(folded, kernel.view(b * c, 1, 1, kernel_size), groups=b * c)
        folded = F.conv2d(folded, kernel.view(b * c, 1, kernel_size, 1), groups=b * c)
    return folded.view(b, c, height, width).clamp_(0.0, 1.0)


def gaussian_blur(
    images: torch.Tensor,
    p: float = 0.5,
    sigma: tuple[float, float] = (0.1, 2.0),
    kernel_size: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DINO's ``GaussianBlur(p, radius_min=0.1, radius_max=2.0)``: with probability ``p`` blur each
    sample with its own sigma, uniform in ``sigma`` (pixels).

    ``kernel_size`` (odd) defaults to :func:`default_kernel_size`, about 10% of the image side: on a
    32 px image that is 3 taps, which keeps a sigma of 2 from wiping out a tiny image.
    """
    _check_images(images)
    lo, hi = check_interval(sigma, "sigma")
    if kernel_size is None:
        kernel_size = default_kernel_size(*images.shape[-2:])
    if kernel_size < 1 or kernel_size % 2 == 0 or kernel_size // 2 >= min(images.shape[-2:]):
        raise ValueError(
            f"kernel_size={kernel_size} is invalid: it must be odd and smaller than twice the image side "
            f"({min(images.shape[-2:])}) for reflect padding"
        )
    if check_prob(p, "p") == 0.0:
        return images
    u = uniform((len(images), 2), generator, images.device)
    blurred = _blur(images, lo + (hi - lo) * u[:, 1], kernel_size)
    return _select((u[:, 0] < p).view(-1, 1, 1, 1), blurred, images)


def solarize(
    images: torch.Tensor, p: float = 0.2, threshold: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``RandomSolarize(threshold, p)``: invert the pixels ``>= threshold`` (DINO: PIL's
    ``ImageOps.solarize`` at 128 of 255, i.e. 0.5 here)."""
    _check_images(images)
    if check_prob(p, "p") == 0.0:
        return images
    selected = _applied(len(images), p, generator, images.device) & (images >= threshold)
    return _select(selected, 1 - images, images)


# --------------------------------------------------------------------------------------------------
# pipelines


@dataclass
class AugmentSpec:
    """Probabilities and strengths of the flip + photometric pipeline applied after cropping.

    Defaults are DINO's / BYOL's shared part: flip 0.5, colour jitter (0.4, 0.4, 0.2, 0.1) with
    p 0.8, grayscale 0.2; blur and solarize off (see :func:`dino_specs` for DINO's per-crop values).
    """

    flip: float = 0.5
    jitter: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale: float = 0.2
    blur: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize: float = 0.0

    def __post_init__(self):
        for name in ("flip", "jitter", "grayscale", "blur", "solarize"):
            check_prob(getattr(self, name), f"AugmentSpec.{name}")
        self.blur_sigma = check_interval(self.blur_sigma, "AugmentSpec.blur_sigma")
        _jitter_range(self.brightness, "AugmentSpec.brightness", 1.0)
        _jitter_range(self.contrast, "AugmentSpec.contrast", 1.0)
        _jitter_range(self.saturation, "AugmentSpec.saturation", 1.0)
        _jitter_range(self.hue, "AugmentSpec.hue", 0.0, bound=0.5)


def augment(images: torch.Tensor, spec: AugmentSpec, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip, colour jitter, grayscale, blur, solarize -- DINO's order -- each per sample."""
    images = random_flip(images, spec.flip, generator)
    images = color_jitter(
        images, spec.brightness, spec.contrast, spec.saturation, spec.hue, p=spec.jitter, generator=generator
    )
    images = random_grayscale(images, spec.grayscale, generator)
    images = gaussian_blur(images, spec.blur, spec.blur_sigma, generator=generator)
    return solarize(images, spec.solarize, generator=generator)


def dino_specs(base: AugmentSpec | None = None) -> tuple[AugmentSpec, AugmentSpec, AugmentSpec]:
    """DINO's asymmetric recipe (Caron et al. 2021) as ``(global_1, global_2, local)``.

    Global crop 1 is always blurred, global crop 2 rarely (0.1) but solarized with p 0.2, local
    crops blurred with p 0.5 and never solarized. Everything else -- flip, colour jitter and its
    strengths, grayscale, the blur sigmas -- comes from ``base`` (default :class:`AugmentSpec` (),
    DINO's shared part: flip 0.5, jitter (0.4, 0.4, 0.2, 0.1) @ 0.8, grayscale 0.2, sigma 0.1-2);
    only ``base.blur`` and ``base.solarize`` are replaced. Sized for small images by the blur kernel
    (10% of the side, see :func:`default_kernel_size`). Use as
    ``g1, g2, local = dino_specs(); multi_crop(x, global_specs=[g1, g2], local_spec=local, ...)``.
    """
    base = AugmentSpec() if base is None else base
    return (
        dataclasses.replace(base, blur=1.0, solarize=0.0),
        dataclasses.replace(base, blur=0.1, solarize=0.2),
        dataclasses.replace(base, blur=0.5, solarize=0.0),
    )


def _crops(images, count, size, scale, ratio, generator) -> list[torch.Tensor]:
    """``count`` random resized crops of every image: a list of ``B x C x size x size`` tensors.

    The boxes of all crops are drawn in one call; each crop is one ``grid_sample`` over the batch.
    """
    b, _, height, width = images.shape
    boxes = sample_crop_boxes(count * b, height, width, scale, ratio, generator=generator, device=images.device)
    grids = _crop_grid(boxes, size, height, width, images.dtype).split(b)
    return [_sample(images, grid) for grid in grids]


#: torchvision's ``RandomResizedCrop`` aspect-ratio range (width / height), DINO's for every crop.
DEFAULT_RATIO = (3 / 4, 4 / 3)


def multi_crop(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    global_crops: int = 2,
    global_size: int | None = None,
    global_scale: tuple[float, float] = (0.4, 1.0),
    global_ratio: tuple[float, float] = DEFAULT_RATIO,
    local_crops: int = 0,
    local_size: int | None = None,
    local_scale: tuple[float, float] = (0.05, 0.4),
    local_ratio: tuple[float, float] = DEFAULT_RATIO,
    global_specs: list[AugmentSpec] | None = None,
    local_spec: AugmentSpec | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """DINO's multi-crop: ``global_crops`` large and ``local_crops`` small augmented views.

    Global crops cover ``global_scale`` of the image (DINO: 0.4-1) at ``global_size`` (default: the
    input side); local crops ``local_scale`` (0.05-0.4) at ``local_size`` (default: half the input
    side); a crop's aspect ratio (width / height) is log-uniform in ``global_ratio`` or
    ``local_ratio`` (torchvision's 3/4-4/3). Crop ``i`` of the globals gets
    ``global_specs[i % len(global_specs)]`` (default :class:`AugmentSpec` ()); every local crop gets
    ``local_spec``. Returns ``(globals, locals)``, lists of ``B x C x size x size`` tensors. The
    boxes of all crops of one kind are drawn at once, and the locals share one augmentation call
    over ``local_crops * B`` images.
    """
    _check_images(images)
    if global_crops < 0 or local_crops < 0:
        raise ValueError(
            f"crop counts must be non-negative, got global_crops={global_crops}, local_crops={local_crops}"
        )
    side = min(images.shape[-2:])
    global_size = int(global_size or side)
    local_size = int(local_size or max(1, side // 2))
    global_specs = list(global_specs) if global_specs else [AugmentSpec()]
    local_spec = local_spec or AugmentSpec()
    b = len(images)

    globals_: list[torch.Tensor] = []
    if global_crops:
        crops = _crops(images, global_crops, global_size, global_scale, global_ratio, generator)
        globals_ = [augment(crop, global_specs[i % len(global_specs)], generator) for i, crop in enumerate(crops)]
    locals_: list[torch.Tensor] = []
    if local_crops:
        crops = torch.cat(_crops(images, local_crops, local_size, local_scale, local_ratio, generator))
        locals_ = list(augment(crops, local_spec, generator).split(b))
    return globals_, locals_


# --------------------------------------------------------------------------------------------------
# the views of a run's config (``RunConfig.views``): training, diagnostics and the benchmarks

def config_augment_spec(views_config) -> AugmentSpec:
    """The flip + photometric pipeline of a :class:`~workbench.config.ViewsConfig`'s probability and
    strength fields: what every crop gets under ``recipe: symmetric``, and the base of
    ``recipe: dino``."""
    v = views_config
    return AugmentSpec(
        flip=v.flip, jitter=v.jitter, brightness=v.brightness, contrast=v.contrast, saturation=v.saturation,
        hue=v.hue, grayscale=v.grayscale, blur=v.blur, blur_sigma=tuple(v.blur_sigma), solarize=v.solarize,
    )


def config_crop_specs(views_config) -> tuple[list[AugmentSpec], AugmentSpec]:
    """``(global_specs, local_spec)`` of a run's ``views.recipe``: global crop ``i`` gets
    ``global_specs[i % len(global_specs)]``, every local crop ``local_spec``.

    ``symmetric``: one :func:`config_augment_spec` for every crop. ``dino``: :func:`dino_specs` of
    it -- the first global crop always blurred, the second blurred with p 0.1 and solarized with
    p 0.2, local crops blurred with p 0.5 -- so ``views.blur`` and ``views.solarize`` are unused
    while every other field applies. ValueError for another recipe.
    """
    spec = config_augment_spec(views_config)
    if views_config.recipe == "symmetric":
        return [spec], spec
    if views_config.recipe == "dino":
        first, second, local = dino_specs(spec)
        return [first, second], local
    raise ValueError(f"views.recipe={views_config.recipe!r} is invalid: one of {', '.join(VIEW_RECIPES)}")


def config_local_size(views_config, image_size: int, patch_size: int) -> int:
    """The local crops' side: ``views.local_size``, or half the image rounded down to a whole
    number of patches (at least one patch), so that a local crop is a smaller token grid."""
    return views_config.local_size or max(patch_size, (image_size // 2) // patch_size * patch_size)


def config_multi_crop(images: torch.Tensor, generator: torch.Generator | None, views_config, patch_size: int,
                      local: bool = True) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """:func:`multi_crop` with a run's ``views`` settings: ``global_crops`` at the image size and,
    when ``local``, ``local_crops`` at :func:`config_local_size`, each with its scale and aspect
    ranges and the specs of :func:`config_crop_specs`."""
    v, side = views_config, images.shape[-1]  # datasets hold square images: the side is the image size
    global_specs, local_spec = config_crop_specs(v)
    return multi_crop(
        images, generator, global_crops=v.global_crops, global_size=side, global_scale=tuple(v.global_scale),
        global_ratio=tuple(v.global_ratio), local_crops=v.local_crops if local else 0,
        local_size=config_local_size(v, side, patch_size), local_scale=tuple(v.local_scale),
        local_ratio=tuple(v.local_ratio), global_specs=global_specs, local_spec=local_spec,
    )


def config_global_view(images: torch.Tensor, generator: torch.Generator | None, views_config,
                       index: int = 0) -> torch.Tensor:
    """One global crop of every image with a run's ``views`` settings, augmented as global crop
    ``index`` of :func:`config_multi_crop` is (its spec under ``views.recipe``): a ``B x C x H x W``
    tensor at the image size. For views made one at a time (the diagnostics' augmented pairs)."""
    v = views_config
    global_specs, _ = config_crop_specs(v)
    (crop,), _ = multi_crop(
        images, generator, global_crops=1, global_size=images.shape[-1], global_scale=tuple(v.global_scale),
        global_ratio=tuple(v.global_ratio), local_crops=0, global_specs=[global_specs[index % len(global_specs)]],
    )
    return crop
