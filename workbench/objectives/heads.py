"""Small heads that objectives own: projectors, the DINO head, and the masked-token predictor."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import global_batch_mean
from ..models.vit import Block


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 2, last_bias: bool = True,
        batch_norm: bool = False) -> nn.Sequential:
    """A stack of ``layers`` linear layers.

    Without ``batch_norm``: Linear-GELU between the layers; statistics stay per sample.
    With ``batch_norm``: Linear-BatchNorm-ReLU between the layers, the layout of the official VICReg
    expander and of the LeJEPA, Barlow Twins and SimCLR projectors. The last layer is a plain Linear
    either way.

    Why the batch norm matters for joint-embedding losses: at initialisation a ViT's pooled vectors
    share a large common offset (larger than their spread across images). Normalising each hidden
    unit over the batch removes the offset and scales the differences to unit variance, so the
    loss sees a spread-out embedding from the first step instead of first having to learn one
    (measured in ``docs/design-notes.md``).
    """
    dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        last = i == len(dims) - 2
        if last:
            mods.append(nn.Linear(a, b, bias=last_bias))
        elif batch_norm:  # the batch norm's shift replaces the linear layer's bias
            mods += [nn.Linear(a, b, bias=False), GlobalBatchNorm(b), nn.ReLU()]
        else:
            mods += [nn.Linear(a, b), nn.GELU()]
    return nn.Sequential(*mods)


class GlobalBatchNorm(nn.Module):
    r"""Batch normalisation of ``N x D`` features over the batch of *every* rank.

    Training: :math:`y = \gamma \odot (x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta` with the mean
    :math:`\mu` and the biased variance :math:`\sigma^2` of the batch concatenated across ranks
    (:func:`~workbench.distributed.global_batch_mean`, differentiable), so a run on W devices
    normalises exactly like one process on the whole batch -- what the official recipes get from
    ``SyncBatchNorm``, here also on CPU (gloo). The running mean and the unbiased running variance
    move by ``momentum`` per training step; evaluation uses them. Computed in float32. One process:
    identical to ``nn.BatchNorm1d`` (same defaults: ``eps = 1e-5``, ``momentum = 0.1``).
    """

    def __init__(self, dim: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2:
            raise ValueError(f"GlobalBatchNorm expects N x D features, got shape {tuple(x.shape)}")
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            if self.training:
                mean, n = global_batch_mean(x)
                var, _ = global_batch_mean((x - mean).square())
                with torch.no_grad():  # n is a float on one process, a 0-d tensor under DDP: no sync
                    unbiased = n / (n - 1).clamp_min(1.0) if torch.is_tensor(n) else n / max(n - 1.0, 1.0)
                    self.running_mean.lerp_(mean.detach(), self.momentum)
                    self.running_var.lerp_(var.detach() * unbiased, self.momentum)
            else:
                mean, var = self.running_mean, self.running_var
            return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}, momentum={self.momentum}"


class DINOHead(nn.Module):
    """DINO's projection head: MLP -> bottleneck -> l2-normalise -> weight-normalised linear.

    The last layer's weight norm is fixed to 1 (``norm_last_layer`` in DINO), which the paper found
    stabilises training; ``out_dim`` is the number of prototypes K.
    """

    def __init__(self, in_dim: int, out_dim: int = 1024, hidden: int = 256, bottleneck: int = 64, layers: int = 3):
        super().__init__()
        self.mlp = mlp(in_dim, hidden, bottleneck, layers)
        self.last = nn.Linear(bottleneck, out_dim, bias=False)
        nn.init.trunc_normal_(self.last.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(x), dim=-1)
        return F.linear(x, F.normalize(self.last.weight, dim=-1))


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embeddings, (grid * grid) x dim, row-major (as MAE's decoder)."""
    if dim % 4:
        raise ValueError(f"sine-cosine positions need a width divisible by 4, got {dim}")
    coords = torch.arange(grid, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    freqs = 1.0 / (10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4)))
    parts = []
    for axis in (xx.flatten(), yy.flatten()):
        angles = axis[:, None] * freqs[None, :]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1)


class MaskedPredictor(nn.Module):
    """A narrow transformer that predicts values at hidden patch positions from visible tokens.

    Visible tokens (projected to ``width``) and one learned mask token per queried position, both
    with fixed 2-D positions, pass through ``depth`` blocks; the queried tokens are read out by a
    linear head. It is MAE's decoder (``out_dim`` = pixels per patch), I-JEPA's predictor
    (``out_dim`` = encoder width) and the ladders' per-layer decoder.
    """

    def __init__(self, in_dim: int, out_dim: int, grid: int, width: int = 64, depth: int = 1, heads: int = 4):
        super().__init__()
        self.in_norm = nn.LayerNorm(in_dim)  # intermediate layers are the raw residual stream
        self.embed = nn.Linear(in_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.register_buffer("pos", sincos_2d(grid, width), persistent=False)
        self.blocks = nn.ModuleList(Block(width, heads, 4.0, True, 0.0) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, out_dim)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, visible: torch.Tensor, keep: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """visible: B x K x in_dim patch tokens at positions ``keep`` (B x K); queries: B x Q positions."""
        x = self.embed(self.in_norm(visible)) + self.pos[keep]
        q = self.mask_token.expand(queries.shape[0], queries.shape[1], -1) + self.pos[queries]
        h = torch.cat([x, q], dim=1)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h[:, x.shape[1]:]))


def gather_tokens(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """tokens: B x N x D, index: B x Q -> B x Q x D."""
    return torch.gather(tokens, 1, index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def default_hidden(width: int, factor: int = 2) -> int:
    """Hidden width of a head on ``width``-wide features: the power of two at or above
    ``factor * width``, at least 64 (``factor = 4`` is the official joint-embedding projectors'
    ratio: 2048 -> 8192 in VICReg, 512 -> 2048 in LeJEPA's example)."""
    return max(64, 2 ** math.ceil(math.log2(factor * width)))
