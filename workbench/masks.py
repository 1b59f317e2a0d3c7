"""Token masks for objectives that drop or predict patches, drawn per sample on the device.

MAE's per-sample random masking (:func:`random_patch_mask`) and I-JEPA's multi-block masks
(:class:`BlockMaskSpec`, :func:`sample_block_masks`, :func:`block_mask_sizes`,
:func:`block_masks`), both as patch indices in the row-major patch order of
:mod:`workbench.models.vit` (``VisionTransformer.forward(images, keep=...)``). Like
:mod:`workbench.views`, every function draws from a ``torch.Generator`` on the device (see
:func:`workbench.randomness.make_generator`) and reads nothing back from it.

Typical use::

    g = make_generator(0, images.device)
    keep, masked, mask = random_patch_mask(len(images), vit.num_patches, 0.75, g, images.device)
    context, targets = block_masks(len(images), 8, g, images.device, spec=BlockMaskSpec(num_targets=4))
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from dataclasses import dataclass

import torch

from .randomness import check_interval, check_prob, make_generator, resolve_device, uniform

__all__ = ["random_patch_mask", "BlockMaskSpec", "sample_block_masks", "block_mask_sizes", "block_masks"]


# --------------------------------------------------------------------------------------------------
# MAE's random masking


def random_patch_mask(
    batch: int,
    num_patches: int,
    ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE's per-sample random masking: argsort of uniform noise, the first ``K`` patches kept.

    ``K = round(N (1 - ratio))``, at least 1. Returns ``keep`` (``B x K``), ``masked``
    (``B x (N - K)``), both sorted ascending (row-major patch indices, for
    ``VisionTransformer.forward(keep=...)``), and ``mask`` (``B x N`` bool, True = hidden).
    """
    ratio = check_prob(ratio, "ratio")
    if num_patches < 1:
        raise ValueError(f"num_patches={num_patches} is invalid: need at least one patch")
    keep_count = max(1, int(round(num_patches * (1.0 - ratio))))
    noise = uniform((batch, num_patches), generator, device)
    order = noise.argsort(dim=1)
    keep = order[:, :keep_count].sort(dim=1).values
    masked = order[:, keep_count:].sort(dim=1).values
    mask = torch.ones(batch, num_patches, dtype=torch.bool, device=noise.device)
    mask.scatter_(1, keep, False)
    return keep, masked, mask


# --------------------------------------------------------------------------------------------------
# I-JEPA's multi-block masks


def _count(value, name: str) -> int:
    """``value`` as an int >= 1 (a bool or a float is not a count); ValueError naming ``name``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        count = operator.index(value)
    except TypeError:
        raise ValueError(f"{name}={value!r} is invalid: expected an integer >= 1") from None
    if count < 1:
        raise ValueError(f"{name}={value!r} is invalid: expected an integer >= 1")
    return count


@dataclass(frozen=True)
class BlockMaskSpec:
    """The shape distribution of I-JEPA's masks (Assran et al. 2023; defaults are the paper's).

    ``num_targets`` target blocks per sample, each with an area fraction uniform in
    ``target_scale`` and an aspect (height / width) uniform in ``target_aspect``; one context block
    (``context_scale``, ``context_aspect``) minus every target patch, holding at least ``min_keep``
    patches. Pairs are stored as float tuples however they were given (a list or ints), so equal
    values make equal, hashable specs. ValueError naming the field for a count below 1, a scale
    pair outside ``(0, 1]`` or with min > max, or an aspect pair not positive with min <= max.
    Whether the blocks fit a given patch grid is checked where the grid is known
    (:func:`sample_block_masks`).
    """

    num_targets: int = 4
    target_scale: tuple[float, float] = (0.15, 0.2)
    target_aspect: tuple[float, float] = (0.75, 1.5)
    context_scale: tuple[float, float] = (0.85, 1.0)
    context_aspect: tuple[float, float] = (1.0, 1.0)
    min_keep: int = 4

    def __post_init__(self):
        values = {
            "num_targets": _count(self.num_targets, "BlockMaskSpec.num_targets"),
            "target_scale": check_interval(self.target_scale, "BlockMaskSpec.target_scale", 0.0, 1.0),
            "target_aspect": check_interval(self.target_aspect, "BlockMaskSpec.target_aspect"),
            "context_scale": check_interval(self.context_scale, "BlockMaskSpec.context_scale", 0.0, 1.0),
            "context_aspect": check_interval(self.context_aspect, "BlockMaskSpec.context_aspect"),
            "min_keep": _count(self.min_keep, "BlockMaskSpec.min_keep"),
        }
        for name, value in values.items():  # frozen: normalised through object.__setattr__
            object.__setattr__(self, name, value)


def _grid(grid) -> tuple[int, int]:
    return (grid, grid) if isinstance(grid, int) else (int(grid[0]), int(grid[1]))


def _fallback_shapes(spec: BlockMaskSpec, rows: int, cols: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The smallest target shape (``target_scale`` low end at the geometric-mean aspect) and the
    largest context shape (``context_scale`` high end), on Python numbers."""
    small = _host_block_shape(spec.target_scale[0], math.sqrt(spec.target_aspect[0] * spec.target_aspect[1]),
                              rows, cols)
    large = _host_block_shape(spec.context_scale[1], math.sqrt(spec.context_aspect[0] * spec.context_aspect[1]),
                              rows, cols)
    return small, large


def _block_shape(scale: torch.Tensor, aspect: torch.Tensor, rows: int, cols: int):
    """Integer block height and width for an area fraction and an aspect (height / width, I-JEPA's
    convention): ``h = round(sqrt(A * aspect))``, then ``w = round(A / h)`` so that ``h * w`` is as
    close to the requested area as whole patches allow (on an 8 x 8 grid that matters)."""
    area = scale * (rows * cols)
    h = torch.round(torch.sqrt(area * aspect)).clamp(1, rows)
    w = torch.round(area / h).clamp(1, cols)
    return h, w


def _host_block_shape(scale: float, aspect: float, rows: int, cols: int) -> tuple[int, int]:
    """:func:`_block_shape` on Python numbers (``round`` rounds half to even, as ``torch.round``)."""
    area = scale * rows * cols
    h = min(max(round(math.sqrt(area * aspect)), 1), rows)
    return h, min(max(round(area / h), 1), cols)


def _block(top, left, h, w, rows: int, cols: int) -> torch.Tensor:
    """Boolean ``... x rows*cols`` masks of the rectangles ``[top, top+h) x [left, left+w)``."""
    r = torch.arange(rows, device=top.device, dtype=top.dtype)
    c = torch.arange(cols, device=top.device, dtype=top.dtype)
    in_rows = (r >= top.unsqueeze(-1)) & (r < (top + h).unsqueeze(-1))
    in_cols = (c >= left.unsqueeze(-1)) & (c < (left + w).unsqueeze(-1))
    return (in_rows.unsqueeze(-1) & in_cols.unsqueeze(-2)).flatten(-2)


def _place(u_top, u_left, h, w, rows: int, cols: int):
    """Uniform top-left corner of an ``h x w`` block inside the grid (every position possible)."""
    top = torch.minimum(torch.floor(u_top * (rows - h + 1)), rows - h)
    left = torch.minimum(torch.floor(u_left * (cols - w + 1)), cols - w)
    return top, left


def sample_block_masks(
    batch: int,
    grid: int | tuple[int, int],
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    *,
    spec: BlockMaskSpec | None = None,
    shared_shape: bool = False,
    min_target: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """I-JEPA's multi-block masks as boolean grids, before the batch truncation of :func:`block_masks`.

    Returns ``context`` (``B x N`` bool) and ``targets`` (``B x spec.num_targets x N`` bool, each an
    axis-aligned rectangle of the ``rows x cols`` grid, N = rows * cols, row-major).

    Per sample, ``num_targets`` target blocks (area fraction uniform in ``target_scale``, aspect
    h / w uniform in ``target_aspect``, uniform position; targets may overlap each other, as in the
    official collator) and one context block (``context_scale``, ``context_aspect``); the context is
    that block minus every target patch (``spec`` defaults to :class:`BlockMaskSpec` ()).
    ``shared_shape=True`` draws one target shape and one context shape for the whole call, as the
    official ``MaskCollator`` does per batch (then targets all have the same size); the default
    draws shapes per sample.

    Guaranteeing ``context >= min_keep`` (and every target ``>= min_target`` patches): 10 candidate
    configurations are drawn per sample at once and the first that satisfies both is used (the
    official collator retries in a loop; this is the same rejection, vectorised). A sample whose 10
    candidates all fail keeps its first candidate's positions but shrinks every target to the
    smallest shape (``target_scale`` low end) and grows the context to the largest (``context_scale``
    high end), which by the checks below always satisfies both. ValueError when even that cannot
    work.
    """
    spec = BlockMaskSpec() if spec is None else spec
    rows, cols = _grid(grid)
    if rows < 2 or cols < 2:
        raise ValueError(f"grid={grid!r} is too small for block masks: need at least 2 x 2 patches")
    num_targets, min_keep = spec.num_targets, spec.min_keep

    # Fallback shapes, computed with Python numbers: the feasibility check reads nothing back from
    # the device.
    (small_h, small_w), (large_h, large_w) = _fallback_shapes(spec, rows, cols)
    worst = large_h * large_w - num_targets * small_h * small_w
    if worst < min_keep:
        raise ValueError(
            f"block masks cannot fit a {rows} x {cols} grid: a context block of at most "
            f"{large_h} x {large_w} patches minus {num_targets} target blocks of at least "
            f"{small_h} x {small_w} can leave {worst} < min_keep={min_keep} context patches; "
            f"use fewer or smaller targets (num_targets, target_scale), a larger context_scale or a smaller min_keep"
        )
    if small_h * small_w < min_target:
        raise ValueError(
            f"min_target={min_target} is invalid: the smallest target shape on a {rows} x {cols} grid is "
            f"{small_h} x {small_w} = {small_h * small_w} patches (target_scale low end); use at most that"
        )

    device = resolve_device(device, generator)
    candidates, blocks = 10, num_targets + 1  # blocks: the targets, then the context
    u = uniform((batch, candidates, blocks, 4), generator, device)  # scale, aspect, top, left
    if shared_shape:  # one target shape (the official collator's p_size) and one context shape
        shapes = uniform((1, 1, 2, 2), generator, device)
        shapes = torch.cat([shapes[:, :, :1].expand(-1, -1, num_targets, -1), shapes[:, :, 1:]], dim=2)
        u = torch.cat([shapes.expand(batch, candidates, -1, -1), u[..., 2:]], dim=-1)
    # Per-block ranges (targets, then the context) made on the device from Python numbers: a
    # torch.tensor of them would be a blocking host-to-device copy on every call.
    is_context = torch.arange(blocks, device=device) == num_targets

    def per_block(target_value: float, context_value: float) -> torch.Tensor:
        return torch.where(is_context, float(context_value), float(target_value))

    (t_lo_s, t_hi_s), (c_lo_s, c_hi_s) = spec.target_scale, spec.context_scale
    (t_lo_a, t_hi_a), (c_lo_a, c_hi_a) = spec.target_aspect, spec.context_aspect
    lo_s, hi_s = per_block(t_lo_s, c_lo_s), per_block(t_hi_s, c_hi_s)
    lo_a, hi_a = per_block(t_lo_a, c_lo_a), per_block(t_hi_a, c_hi_a)
    h, w = _block_shape(lo_s + (hi_s - lo_s) * u[..., 0], lo_a + (hi_a - lo_a) * u[..., 1], rows, cols)
    context, targets = _blocks(u[..., 2], u[..., 3], h, w, rows, cols, num_targets)

    ok = context.sum(dim=-1) >= min_keep  # B x candidates
    if min_target > 1:
        ok &= (h[..., :num_targets] * w[..., :num_targets]).amin(dim=-1) >= min_target
    first = ok.to(torch.uint8).argmax(dim=1)  # the first valid candidate
    index = torch.arange(batch, device=device)
    context, targets = context[index, first], targets[index, first]

    # Samples without a valid candidate: candidate 0's positions with the fallback shapes.
    fb_h, fb_w = per_block(small_h, large_h), per_block(small_w, large_w)
    fb_context, fb_targets = _blocks(u[:, 0, :, 2], u[:, 0, :, 3], fb_h, fb_w, rows, cols, num_targets)
    failed = ~ok.any(dim=1)
    context = torch.where(failed[:, None], fb_context, context)
    targets = torch.where(failed[:, None, None], fb_targets, targets)
    return context, targets


def _blocks(u_top, u_left, h, w, rows: int, cols: int, num_targets: int):
    """Context and target masks of ``... x (T + 1)`` blocks (targets first, context last) of shapes
    ``h x w``, placed by the uniforms ``u_top``, ``u_left``: ``(... x N, ... x T x N)``."""
    top, left = _place(u_top, u_left, h, w, rows, cols)
    blocks = _block(top, left, h, w, rows, cols)
    targets = blocks[..., :num_targets, :]
    return blocks[..., num_targets, :] & ~targets.any(dim=-2), targets


def _random_subset(mask: torch.Tensor, count: int, generator) -> torch.Tensor:
    """``... x count`` sorted indices of a uniformly random subset of each row's True entries
    (every row must hold at least ``count``)."""
    outside = torch.full_like(mask, 2.0, dtype=torch.float32)  # sorts after every uniform in [0, 1)
    key = torch.where(mask, uniform(mask.shape, generator, mask.device), outside)
    return key.argsort(dim=-1)[..., :count].sort(dim=-1).values


def block_mask_sizes(grid: int | tuple[int, int], spec: BlockMaskSpec | None = None) -> tuple[int, int]:
    """``(context_keep, target_keep)``: how many context patches and patches per target block
    :func:`block_masks` returns for ``spec`` (default :class:`BlockMaskSpec` ()) on ``grid``,
    whatever the batch, seed or device.

    A batch of masked forwards needs one token count per batch. Reading the counts of the drawn
    masks back from the device would stall the step (a host synchronisation), so the counts are fixed
    in advance from the parameters alone:

    * ``target_keep`` is the smallest target block the shape distribution can produce (the
      minimum of ``h * w`` over a dense grid of area fractions and aspects, never above the
      smallest shape at the geometric-mean aspect). Larger blocks are cut to it, as the official
      collator cuts every block to the batch's smallest.
    * ``context_keep`` is the 1st percentile of the context size (context block minus the targets)
      over 1,024 draws with a fixed seed, at least ``min_keep`` and at most what the fallback of
      :func:`sample_block_masks` guarantees. Candidates with a smaller context are rejected like
      those below ``min_keep`` (about 1% of draws; a sample rarely needs its second candidate).
      With ``shared_shape`` the same sizes apply (a sample's shape follows the same distribution).

    The plan costs a fraction of a second on the CPU and is cached per (grid, spec); objectives call
    it once when they are built. Example: the paper's values on an 8 x 8 grid give ``(17, 8)`` --
    area fractions 0.15-0.2 of 64 patches are 9.6-12.8, and the aspect 1.5 end turns 9.6 into a
    4 x 2 block.
    """
    return _block_mask_sizes(*_grid(grid), BlockMaskSpec() if spec is None else spec)


@functools.lru_cache(maxsize=64)
def _block_mask_sizes(rows: int, cols: int, spec: BlockMaskSpec) -> tuple[int, int]:
    grid = (rows, cols)
    # Validation (and the fallback guarantee) first: sample_block_masks raises for impossible
    # parameters before drawing anything.
    sample_block_masks(0, grid, spec=spec)
    lo_s, hi_s = spec.target_scale
    lo_a, hi_a = spec.target_aspect
    u = torch.linspace(0.0, 1.0, 513)
    h, w = _block_shape((lo_s + (hi_s - lo_s) * u).view(-1, 1), (lo_a + (hi_a - lo_a) * u).view(1, -1), rows, cols)
    small, large = _fallback_shapes(spec, rows, cols)
    target_keep = min(int((h * w).min()), small[0] * small[1])

    guaranteed = large[0] * large[1] - spec.num_targets * small[0] * small[1]
    draws = 1024
    context, _ = sample_block_masks(draws, grid, make_generator(0), spec=spec, min_target=target_keep)
    percentile = int(context.sum(dim=-1).kthvalue(max(1, draws // 100)).values)
    return min(max(spec.min_keep, percentile), guaranteed), target_keep


def block_masks(
    batch: int,
    grid: int | tuple[int, int],
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    *,
    spec: BlockMaskSpec | None = None,
    shared_shape: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """I-JEPA context and target indices (Assran et al. 2023) for ``spec`` (default
    :class:`BlockMaskSpec` (), the paper's values).

    Returns ``context_keep`` (``B x Kc`` long, sorted; for ``VisionTransformer.forward(keep=...)``)
    and ``targets`` (``B x spec.num_targets x Kt`` long, each row sorted). Blocks come from
    :func:`sample_block_masks` (see there for the sampling and the ``min_keep`` guarantee). To batch
    them, as the official collator does, every context is cut to ``Kc`` patches and every target
    block to ``Kt`` patches, keeping a uniformly random subset (the official collator keeps the
    first indices, biasing the cut to the block's top rows). ``Kc`` and ``Kt`` come from
    :func:`block_mask_sizes` -- fixed by the parameters, not by the draw (the official collator
    takes the batch's smallest counts, which on a GPU would cost a host synchronisation per step);
    ``Kc >= min_keep`` and ``Kt >= 1`` always. Nothing is read back from the device.
    """
    spec = BlockMaskSpec() if spec is None else spec
    context_keep, target_keep = block_mask_sizes(grid, spec)
    context, targets = sample_block_masks(
        batch, grid, generator, device, spec=dataclasses.replace(spec, min_keep=context_keep),
        shared_shape=shared_shape, min_target=target_keep,
    )
    return _random_subset(context, context_keep, generator), _random_subset(targets, target_keep, generator)
