"""Collectives for losses and diagnostics that must see the whole (multi-GPU) batch.

Every helper is a no-op on a single process (no process group, or a group of one): it returns its
input unchanged (or a plain ``mean``) and launches nothing, so a loss written with these helpers
costs nothing extra outside DDP.

Gradient convention (read this before writing a loss)
-----------------------------------------------------
Lightning's DDP *averages* parameter gradients over the W ranks. The losses of
:mod:`workbench.losses` therefore return, on every rank, the **same global value** -- the loss the
single process would compute on the concatenated batch -- and their gradient with respect to a
rank's local inputs is **W times** the single-process gradient of that rank's slice. After DDP's
average over ranks, parameter gradients equal the single-process ones exactly.

The differentiable collectives below implement that convention by construction:

* :func:`all_reduce_sum` -- forward: sum over ranks; backward: sum of the incoming gradients over
  ranks (every rank used the reduced value, so every rank's loss depends on every rank's input);
* :func:`gather_with_grad` -- forward: concatenation of all ranks' tensors in rank order;
  backward: sum the gradient of the whole gathered tensor over ranks, keep this rank's slice
  (like the ``FullGatherLayer`` of the official VICReg code);
* :func:`global_batch_mean` -- mean over the first dimension of the concatenated batch, built on
  :func:`all_reduce_sum` (sums and counts are reduced together, so uneven batches are fine).

A loss that is a plain local mean also satisfies the convention (for equal local batches) but
reports a different value on each rank; the losses here reduce it to the global mean so that all
ranks log -- and check for non-finite values -- the same number.

Work done by one rank alone
---------------------------
Diagnostics gather the probe embeddings to rank 0 (:func:`gather_rows`), which then computes the
metrics by itself. A metric built on these helpers (the SIGReg statistic) would otherwise launch a
collective that the other ranks never join -- a deadlock. Inside :func:`local_only` every helper
behaves as on a single process, so the same functions give rank 0 the statistic of the data it
holds. :func:`launched_rank` tells a process started by a launcher for another rank apart before
any process group exists (the run directory is created once, by rank 0).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Iterator

import torch
import torch.distributed as dist

# True inside ``local_only()``: the helpers act as on a single process (a context variable, so a
# thread running the block does not change what other threads see)
_LOCAL_ONLY = contextvars.ContextVar("workbench_local_only", default=False)
# rank variables a launcher sets for the processes it starts (Lightning, torchrun, SLURM)
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def _group_initialised() -> bool:
    return not _LOCAL_ONLY.get() and dist.is_available() and dist.is_initialized()


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialised (False inside :func:`local_only`)."""
    return _group_initialised() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks (1 without a process group, and inside :func:`local_only`)."""
    return dist.get_world_size() if _group_initialised() else 1


def rank() -> int:
    """This process's rank (0 without a process group, and inside :func:`local_only`)."""
    return dist.get_rank() if _group_initialised() else 0


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Within the block this process acts alone: every helper here is a no-op, as on one process.

    For work that one rank does by itself while the others wait (rank 0 computing the diagnostics
    of the gathered probe embeddings): a helper that launched a collective there would wait forever
    for ranks that never call it. Nests; restores the previous state on exit.
    """
    token = _LOCAL_ONLY.set(True)
    try:
        yield
    finally:
        _LOCAL_ONLY.reset(token)


def launched_rank() -> int:
    """The rank a launcher gave this process, from the environment, before any process group exists.

    Lightning's DDP launcher re-runs the user's script for ranks 1..N-1 with ``LOCAL_RANK`` (and
    ``NODE_RANK``) set; torchrun sets ``RANK``, SLURM ``SLURM_PROCID``. Returns the first non-zero
    one of these (so 0 means "rank 0 or a single process"; any other value, "not rank 0").
    """
    for key in _RANK_VARIABLES:
        value = os.environ.get(key, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 0


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.detach().clone().contiguous()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.detach().clone().contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over ranks, differentiable (backward sums the gradients over ranks).

    Out of place: the input is never modified. Returns ``tensor`` itself on a single process.
    """
    if not is_distributed():
        return tensor
    if tensor.requires_grad:
        return _AllReduceSum.apply(tensor)
    out = tensor.detach().clone().contiguous()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over ranks (:func:`all_reduce_sum` divided by the world size)."""
    if not is_distributed():
        return tensor
    return all_reduce_sum(tensor) / world_size()


def gather_sizes(n: int, device: torch.device | str | None = None) -> list[int]:
    """First-dimension sizes of every rank's tensor, in rank order (``[n]`` on a single process).

    One tiny all-gather plus a host synchronisation.
    """
    if not is_distributed():
        return [int(n)]
    local = torch.tensor([int(n)], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(local) for _ in range(world_size())]
    dist.all_gather(sizes, local)
    return [int(s.item()) for s in sizes]


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        ctx.sizes = sizes
        ctx.rank = rank()
        tensor = tensor.detach().contiguous()
        longest = max(sizes)
        if tensor.shape[0] < longest:  # all_gather needs equal shapes: pad, then cut back
            pad = tensor.new_zeros((longest - tensor.shape[0],) + tuple(tensor.shape[1:]))
            tensor = torch.cat([tensor, pad])
        parts = [torch.empty_like(tensor) for _ in sizes]
        dist.all_gather(parts, tensor)
        return torch.cat([part[:size] for part, size in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.detach().clone().contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None


def gather_with_grad(tensor: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """Concatenate every rank's ``tensor`` along dim 0 (rank order), keeping the autograd graph.

    The backward pass sums the gradient of the gathered tensor over ranks and hands each rank the
    slice of its own input, so gradients follow the module's convention (W x the single-process
    gradient; see the module docstring). Ranks may hold different numbers of rows; pass ``sizes``
    (from :func:`gather_sizes`) to skip the size exchange. Returns ``tensor`` itself on a single
    process.
    """
    if not is_distributed():
        return tensor
    if sizes is None:
        sizes = gather_sizes(tensor.shape[0], tensor.device)
    return _GatherWithGrad.apply(tensor, sizes)


def global_batch_mean(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
    """Mean over dim 0 of the batch concatenated across ranks, and the global number of rows.

    Differentiable (through :func:`all_reduce_sum`); one collective for sums and count together.
    On a single process: ``(x.mean(0), float(len(x)))``; distributed, the count is a 0-d tensor.
    """
    if not is_distributed():
        return x.mean(0), float(x.shape[0])
    total = x.sum(0)
    count = torch.full((1,), float(x.shape[0]), dtype=total.dtype, device=total.device)
    packed = all_reduce_sum(torch.cat([total.reshape(-1), count]))
    n = packed[-1]
    return (packed[:-1] / n).reshape(total.shape), n


@torch.no_grad()
def gather_rows(tensor: torch.Tensor, dst: int = 0) -> torch.Tensor | None:
    """Every rank's ``tensor`` concatenated along dim 0 in rank order, on rank ``dst`` only.

    All ranks must call it with tensors of the same shape and dtype (pad uneven shards and trim the
    result: only the caller knows which rows are padding). Rank ``dst`` gets the ``W * rows`` result;
    the other ranks get ``None`` and never hold more than their own rows. No gradient. On a single
    process: ``tensor`` itself.
    """
    if not is_distributed():
        return tensor
    tensor = tensor.detach().contiguous()
    parts = [torch.empty_like(tensor) for _ in range(world_size())] if rank() == dst else None
    dist.gather(tensor, parts, dst=dst)
    return torch.cat(parts) if parts is not None else None


def barrier() -> None:
    """Wait until every rank gets here (nothing on a single process)."""
    if is_distributed():
        dist.barrier()


@torch.no_grad()
def broadcast(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """``tensor`` as held by rank ``src`` (in place, no gradient); unchanged on a single process."""
    if is_distributed():
        tensor = tensor.contiguous()
        dist.broadcast(tensor, src=src)
    return tensor


__all__ = [
    "all_reduce_mean", "all_reduce_sum", "barrier", "broadcast", "gather_rows", "gather_sizes", "gather_with_grad",
    "global_batch_mean", "is_distributed", "launched_rank", "local_only", "rank", "world_size",
]
