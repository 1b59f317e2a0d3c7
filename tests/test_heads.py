"""Projector heads: GlobalBatchNorm against a hand-worked case, nn.BatchNorm1d and two gloo ranks;
the joint-embedding projectors' layout."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from spawned import free_port
from torch import nn

from workbench.objectives.heads import GlobalBatchNorm, default_hidden, mlp

DEADLINE = 300.0  # seconds the parent waits for the two gloo workers


def test_global_batch_norm_worked_case():
    # x = 0, 2, 4, 6: mean 3, biased variance (9 + 1 + 1 + 9) / 4 = 5, unbiased 20 / 3
    bn = GlobalBatchNorm(1, eps=0.0)
    x = torch.tensor([[0.0], [2.0], [4.0], [6.0]])
    y = bn(x)
    assert torch.allclose(y, (x - 3.0) / math.sqrt(5.0))
    assert torch.allclose(bn.running_mean, torch.tensor([0.1 * 3.0]))
    assert torch.allclose(bn.running_var, torch.tensor([0.9 * 1.0 + 0.1 * 20.0 / 3.0]))
    bn.eval()  # evaluation: the running statistics, not the batch's
    assert torch.allclose(bn(torch.tensor([[1.3]])), torch.tensor([[(1.3 - 0.3) / math.sqrt(0.9 + 2.0 / 3.0)]]))


def test_global_batch_norm_matches_batchnorm1d_on_one_process():
    torch.manual_seed(0)
    ours, ref = GlobalBatchNorm(5), nn.BatchNorm1d(5)
    with torch.no_grad():
        for m in (ours, ref):
            m.weight.copy_(torch.linspace(0.5, 2.0, 5))
            m.bias.copy_(torch.linspace(-1.0, 1.0, 5))
    for step in range(3):
        x = (torch.randn(16, 5) * (step + 1) + step).requires_grad_(True)
        x_ref = x.detach().clone().requires_grad_(True)
        y, y_ref = ours(x), ref(x_ref)
        weights = torch.randn(16, 5)
        (y * weights).sum().backward()
        (y_ref * weights).sum().backward()
        assert torch.allclose(y, y_ref, atol=1e-5)
        assert torch.allclose(x.grad, x_ref.grad, atol=1e-5)
    assert torch.allclose(ours.weight.grad, ref.weight.grad, atol=1e-4)
    assert torch.allclose(ours.running_mean, ref.running_mean, atol=1e-5)
    assert torch.allclose(ours.running_var, ref.running_var, atol=1e-4)
    ours.eval(), ref.eval()
    x = torch.randn(4, 5)
    assert torch.allclose(ours(x), ref(x), atol=1e-5)


def _rank_worker(rank: int, world: int, port: int, x: torch.Tensor, weights: torch.Tensor, queue) -> None:
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                                timeout=timedelta(seconds=60))
        try:
            from workbench.distributed import gather_with_grad

            bn = GlobalBatchNorm(x.shape[1])
            rows = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
            local = x[rows].clone().requires_grad_(True)
            y = bn(local)
            # a loss computed like the workbench's losses: the same global value on every rank
            (gather_with_grad(y) * weights).sum().backward()
            queue.put((rank, (y.detach(), local.grad, bn.running_mean, bn.running_var)))
        finally:
            dist.destroy_process_group()
    except Exception as exc:  # reported to the parent instead of leaving it waiting
        queue.put((rank, f"{type(exc).__name__}: {exc}"))


def _two_ranks(x: torch.Tensor, weights: torch.Tensor) -> dict:
    """Rank -> (output, input gradient, running mean, running variance), or an error message."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_rank_worker, args=(r, 2, port, x, weights, queue)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        # generous: two fresh interpreters import torch on a possibly busy machine
        return dict(queue.get(timeout=DEADLINE) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()


def test_global_batch_norm_on_two_ranks_equals_one_process_on_the_whole_batch():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 3, generator=g) * 2.0 + 1.0
    weights = torch.randn(8, 3, generator=g)
    ref = GlobalBatchNorm(3)
    xr = x.clone().requires_grad_(True)
    y_ref = ref(xr)
    (y_ref * weights).sum().backward()

    results = _two_ranks(x, weights)
    if any(isinstance(r, str) for r in results.values()):  # once more, on a new port (another
        results = _two_ranks(x, weights)  # process may have taken the free one); a bug fails twice
    errors = {rank: r for rank, r in results.items() if isinstance(r, str)}
    assert not errors, errors
    for rank, (y, grad, running_mean, running_var) in results.items():
        rows = slice(rank * 4, (rank + 1) * 4)
        assert torch.allclose(y, y_ref[rows].detach(), atol=1e-5)
        # workbench.distributed's convention: world_size x the single-process gradient of the slice
        # (DDP's average over the ranks then gives the single-process parameter gradient)
        assert torch.allclose(grad, 2.0 * xr.grad[rows], atol=1e-4)
        assert torch.allclose(running_mean, ref.running_mean, atol=1e-6)
        assert torch.allclose(running_var, ref.running_var, atol=1e-5)


def test_mlp_with_batch_norm_is_linear_bn_relu_then_linear():
    head = mlp(8, 32, 4, layers=3, batch_norm=True)
    kinds = [type(m) for m in head]
    assert kinds == [nn.Linear, GlobalBatchNorm, nn.ReLU, nn.Linear, GlobalBatchNorm, nn.ReLU, nn.Linear]
    assert head[0].bias is None and head[3].bias is None and head[6].bias is not None  # BN shifts instead
    assert [m.out_features for m in head if isinstance(m, nn.Linear)] == [32, 32, 4]
    plain = mlp(8, 32, 4, layers=2)
    assert [type(m) for m in plain] == [nn.Linear, nn.GELU, nn.Linear]


@pytest.mark.parametrize("width, factor, expected",
                         [(16, 2, 64), (64, 2, 128), (96, 2, 256), (64, 4, 256), (96, 4, 512)])
def test_default_hidden(width, factor, expected):
    assert default_hidden(width, factor) == expected


def test_lejepa_and_vicreg_projectors_follow_the_official_shape():
    from workbench.config import ObjectiveConfig
    from workbench.objectives import BuildContext, build_objective

    context = BuildContext(width=64, depth=2, patch_size=8, grid=4, channels=3, image_size=32, num_prefix=1,
                           num_classes=2)
    for kind, dim in (("lejepa", 128), ("vicreg", 256)):
        projector = build_objective(kind, ObjectiveConfig(), context).projector
        widths = [(m.in_features, m.out_features) for m in projector if isinstance(m, nn.Linear)]
        assert widths == [(64, 256), (256, 256), (256, dim)], kind
        assert sum(isinstance(m, GlobalBatchNorm) for m in projector) == 2, kind
