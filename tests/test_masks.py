"""Tests of the token masks (workbench.masks): MAE's random masking and I-JEPA's block masks."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from workbench import masks
from workbench.masks import BlockMaskSpec, block_mask_sizes, block_masks, random_patch_mask, sample_block_masks
from workbench.randomness import make_generator

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# Every random function as f(batch, generator, device) -> tuple of tensors.
RANDOM_FUNCTIONS = {
    "random_patch_mask": lambda b, g, d: random_patch_mask(b, 64, 0.75, g, d),
    "block_masks": lambda b, g, d: block_masks(b, 8, g, d),
    "sample_block_masks": lambda b, g, d: sample_block_masks(b, 8, g, d),
}


def same(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(RANDOM_FUNCTIONS))
def test_seeded_determinism_and_device(name, device):
    fn = RANDOM_FUNCTIONS[name]
    a = fn(32, make_generator(1, device), device)
    b = fn(32, make_generator(1, device), device)
    c = fn(32, make_generator(2, device), device)
    assert same(a, b), "same seed must give identical outputs"
    assert not same(a, c), "a different seed must give different outputs"
    assert all(t.device.type == torch.device(device).type for t in a)


@pytest.mark.parametrize("ratio", [0.0, 0.4, 0.75, 0.9, 1.0])
def test_random_patch_mask(ratio):
    n = 64
    keep, masked, mask = random_patch_mask(200, n, ratio, make_generator(0))
    k = max(1, round(n * (1 - ratio)))
    assert keep.shape == (200, k) and masked.shape == (200, n - k) and mask.shape == (200, n)
    assert keep.dtype == torch.long and mask.dtype == torch.bool
    both = torch.cat([keep, masked], dim=1).sort(dim=1).values
    assert torch.equal(both, torch.arange(n).expand(200, n))  # disjoint and covering 0..N-1
    assert (keep.diff(dim=1) > 0).all() and (masked.diff(dim=1) > 0).all()  # sorted
    assert (mask.sum(1) == n - k).all() and not mask.gather(1, keep).any() and mask.gather(1, masked).all()
    assert mask.float().mean().item() == pytest.approx((n - k) / n)
    if 0 < ratio < 1:
        assert len({tuple(row) for row in keep.tolist()}) > 190  # per-sample masks


def test_random_patch_mask_errors():
    with pytest.raises(ValueError, match="ratio"):
        random_patch_mask(4, 64, 1.5)
    with pytest.raises(ValueError, match="num_patches"):
        random_patch_mask(4, 0, 0.5)


# ------------------------------------------------------------------------------------- the spec


def test_block_mask_spec_defaults_are_the_papers():
    spec = BlockMaskSpec()
    assert (spec.num_targets, spec.target_scale, spec.target_aspect, spec.context_scale, spec.context_aspect,
            spec.min_keep) == (4, (0.15, 0.2), (0.75, 1.5), (0.85, 1.0), (1.0, 1.0), 4)


def test_block_mask_spec_normalises_pairs_and_is_hashable():
    spelled = BlockMaskSpec(target_scale=[0.15, 0.2], context_scale=(0.85, 1), context_aspect=[1, 1])
    assert spelled == BlockMaskSpec() and hash(spelled) == hash(BlockMaskSpec())
    assert isinstance(spelled.target_scale, tuple) and all(isinstance(v, float) for v in spelled.context_aspect)
    assert len({spelled, BlockMaskSpec(), BlockMaskSpec(num_targets=2)}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        spelled.num_targets = 3


@pytest.mark.parametrize("kwargs,field", [
    ({"num_targets": 0}, "BlockMaskSpec.num_targets"),
    ({"num_targets": 2.5}, "BlockMaskSpec.num_targets"),
    ({"num_targets": True}, "BlockMaskSpec.num_targets"),
    ({"min_keep": 0}, "BlockMaskSpec.min_keep"),
    ({"target_scale": (0.3, 0.1)}, "BlockMaskSpec.target_scale"),
    ({"target_scale": (0.1, 1.5)}, "BlockMaskSpec.target_scale"),
    ({"target_scale": 0.2}, "BlockMaskSpec.target_scale"),
    ({"context_scale": (0.0, 1.0)}, "BlockMaskSpec.context_scale"),
    ({"target_aspect": (0.0, 1.0)}, "BlockMaskSpec.target_aspect"),
    ({"context_aspect": (2.0, 1.0)}, "BlockMaskSpec.context_aspect"),
])
def test_block_mask_spec_rejects_bad_values_by_name(kwargs, field):
    (name, value), = kwargs.items()
    with pytest.raises(ValueError, match="^" + re.escape(f"{field}={value!r} is invalid")):
        BlockMaskSpec(**kwargs)


# -------------------------------------------------------------------------------- block masks


def is_rectangle(masks_: torch.Tensor, grid: int) -> torch.Tensor:
    """For ... x N boolean masks: True where the mask is a non-empty axis-aligned rectangle."""
    m = masks_.view(-1, grid, grid)
    rows, cols = m.any(2), m.any(1)

    def contiguous(v):  # True entries form one run
        first = v.float().argmax(1)
        last = grid - 1 - v.flip(1).float().argmax(1)
        return v.sum(1) == last - first + 1

    full = m.sum((1, 2)) == rows.sum(1) * cols.sum(1)
    return (full & contiguous(rows) & contiguous(cols) & rows.any(1)).view(masks_.shape[:-1])


def test_is_rectangle_on_hand_made_masks():
    grid = torch.zeros(3, 4, 4, dtype=torch.bool)
    grid[0, 1:3, 0:2] = True  # a 2 x 2 block
    grid[1, 0, 0] = grid[1, 2, 2] = True  # two separate patches
    grid[2, 0:2, 0:2] = True
    grid[2, 1, 1] = False  # an L shape
    assert is_rectangle(grid.flatten(1), 4).tolist() == [True, False, False]


@pytest.mark.parametrize("device", DEVICES)
def test_block_masks_paper_values_on_8x8(device):
    batch, grid = 256, 8
    spec = BlockMaskSpec(num_targets=4)
    g = make_generator(0, device)
    context, targets = sample_block_masks(batch, grid, g, device, spec=spec)
    assert context.shape == (batch, 64) and targets.shape == (batch, 4, 64)
    assert context.device.type == targets.device.type == torch.device(device).type
    assert is_rectangle(targets, grid).all()
    assert not (context.unsqueeze(1) & targets).any()  # disjoint per sample
    assert (context.sum(1) >= 4).all()
    area = targets.sum(-1).float() / 64
    assert (area >= 0.12).all() and (area <= 0.2).all()  # (0.15, 0.2) up to whole patches on 8 x 8

    keep, target_idx = block_masks(batch, grid, make_generator(0, device), device, spec=spec)
    kc, kt = block_mask_sizes(grid, spec)
    assert keep.shape == (batch, kc) and target_idx.shape == (batch, 4, kt)
    assert keep.dtype == target_idx.dtype == torch.long and keep.device.type == torch.device(device).type
    assert kc >= 4 and kt >= 1
    assert (keep.diff(dim=1) > 0).all() and (target_idx.diff(dim=2) > 0).all()  # sorted, unique
    assert keep.min() >= 0 and keep.max() < 64 and target_idx.min() >= 0 and target_idx.max() < 64
    hidden = torch.zeros(batch, 64, dtype=torch.bool, device=device)
    hidden.scatter_(1, target_idx.flatten(1), True)
    assert not hidden.gather(1, keep).any()  # context and targets disjoint after truncation
    # Same generator state and thresholds: the cut indices are subsets of the uncut masks.
    context, targets = sample_block_masks(batch, grid, make_generator(0, device), device,
                                          spec=dataclasses.replace(spec, min_keep=kc), min_target=kt)
    assert context.gather(1, keep).all() and targets.gather(2, target_idx).all()


def test_block_masks_shared_shape_draws_one_shape_per_call():
    context, targets = sample_block_masks(64, 8, make_generator(0), shared_shape=True)
    areas = targets.sum(-1)
    assert is_rectangle(targets, 8).all() and (areas == areas[0, 0]).all()  # one target shape per call
    keep, target_idx = block_masks(64, 8, make_generator(0), shared_shape=True)
    assert (keep.shape[1], target_idx.shape[2]) == block_mask_sizes(8)  # the same fixed sizes


def test_block_mask_sizes_paper_values_on_8x8():
    # Targets: area fractions 0.15-0.2 of 64 patches are 9.6-12.8 and aspects (h / w) 0.75-1.5; with
    # h = round(sqrt(A * aspect)) and w = round(A / h): h = 2 needs A * aspect < 6.25 (the least is
    # 7.2) and h = 5 needs >= 20.25 (the most is 19.2); h = 3 gives w >= round(3.2) = 3 (9 patches);
    # h = 4 gives w = round(2.4) = 2 at A = 9.6 (sqrt(9.6 * 1.5) = 3.79 -> 4): the smallest block is 8.
    context_keep, target_keep = block_mask_sizes(8)
    assert target_keep == 8
    # The context: at least min_keep, at most the fallback's guarantee (8 x 8 minus four 3 x 3 targets).
    assert 4 <= context_keep <= 64 - 4 * 9
    # It is the 1st percentile of the context size: about 1% of independent draws fall below it.
    context, _ = sample_block_masks(4096, 8, make_generator(123), min_target=target_keep)
    below = (context.sum(-1) < context_keep).float().mean().item()
    assert below < 0.03
    assert (context.sum(-1) < context_keep + 1).float().mean().item() >= 0.005
    # Fixed by the parameters: a larger min_keep raises it; any spelling of a pair is one entry.
    assert block_mask_sizes(8, BlockMaskSpec(min_keep=28)) == (28, 8)
    assert block_mask_sizes((8, 8), BlockMaskSpec(target_scale=[0.15, 0.2])) == (context_keep, target_keep)


def test_block_mask_sizes_are_cached_per_grid_and_spec():
    spec = BlockMaskSpec(num_targets=3, target_scale=(0.1, 0.2))
    first = block_mask_sizes(8, spec)
    hits = masks._block_mask_sizes.cache_info().hits
    # an equal spec spelled with a list and ints, and the grid as a pair: the same cache entry
    assert block_mask_sizes((8, 8), BlockMaskSpec(num_targets=3, target_scale=[0.1, 0.2])) == first
    assert masks._block_mask_sizes.cache_info().hits == hits + 1


def test_block_masks_have_fixed_sizes_whatever_the_draw():
    sizes = {tuple(t.shape[1:]) for seed in range(4) for batch in (1, 7, 64)
             for t in block_masks(batch, 8, make_generator(seed))}
    kc, kt = block_mask_sizes(8)
    assert sizes == {(kc,), (4, kt)}
    assert tuple(t.shape for t in block_masks(0, 8)) == ((0, kc), (0, 4, kt))


def test_sample_block_masks_min_target_rejects_small_targets():
    _, targets = sample_block_masks(512, 8, make_generator(0), min_target=9)
    assert (targets.sum(-1) >= 9).all()
    with pytest.raises(ValueError, match="min_target"):
        sample_block_masks(4, 8, min_target=10)  # the smallest fallback target is 3 x 3


def test_block_masks_min_keep_guarantee_uses_the_fallback():
    # 64 - 4 * 9 = 28: the largest min_keep the fallback can still guarantee on 8 x 8.
    spec = BlockMaskSpec(min_keep=28)
    context, targets = sample_block_masks(512, 8, make_generator(0), spec=spec)
    assert (context.sum(1) >= 28).all() and is_rectangle(targets, 8).all()
    assert not (context.unsqueeze(1) & targets).any()
    keep, _ = block_masks(512, 8, make_generator(0), spec=spec)
    assert keep.shape[1] >= 28


def test_block_masks_rectangular_grid_and_errors():
    context, targets = sample_block_masks(32, (6, 10), make_generator(0), spec=BlockMaskSpec(num_targets=2))
    assert context.shape == (32, 60) and targets.shape == (32, 2, 60)
    with pytest.raises(ValueError, match="too small"):
        block_masks(4, 1)
    with pytest.raises(ValueError, match="cannot fit"):
        block_masks(4, 4, spec=BlockMaskSpec(num_targets=4, target_scale=(0.2, 0.25)))
    with pytest.raises(ValueError, match="cannot fit"):
        block_masks(4, 8, spec=BlockMaskSpec(min_keep=29))
    with pytest.raises(ValueError, match="target_scale"):
        block_masks(4, 8, spec=BlockMaskSpec(target_scale=(0.3, 0.1)))


def test_masks_are_vectorised_over_the_batch():
    """No Python loop over samples: a batch of 512 dispatches exactly as many torch ops as a batch of 8
    (an exact count on any machine, where a wall-clock bound depends on the machine's load)."""
    from op_count import dispatched_ops

    calls = {
        "random_patch_mask": lambda n, g: random_patch_mask(n, 64, 0.75, g),
        "block_masks": lambda n, g: block_masks(n, 8, g),
    }
    for name, call in calls.items():
        call(8, make_generator(0))  # the block-size plan is computed once per spec and cached
        counts = []
        for n in (8, 512):
            counts.append(dispatched_ops(lambda: call(n, make_generator(0))))
        assert counts[0] == counts[1], f"{name}: {counts[0]} ops for 8 samples, {counts[1]} for 512"

