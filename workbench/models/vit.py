"""A small Vision Transformer that returns every layer's tokens.

The layout follows the ViT of DINO and timm (pre-norm blocks, a learned CLS token, learned
position embeddings, optional register tokens, stochastic depth), kept small and direct so a
reader sees the whole model in one file. Two additions serve the workbench:

* ``forward`` returns the token sequence after every layer (layer 0 = patch embedding with
  positions, layer ``depth`` = last block), so step-wise losses and diagnostics can read any layer
  from a single forward pass;
* ``gradient_isolation`` detaches the residual stream between chosen blocks, turning end-to-end
  training into greedy local learning with a single switch.

Token order in every layer: ``[CLS, registers..., patches...]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ViTOutput:
    """Everything one backbone forward produces.

    layers: ``depth + 1`` tensors of shape B x T x D (the raw residual stream; layer 0 is the patch
            embedding plus positions).
    final:  ``norm(layers[-1])``, the model's own normalised read-out of the last layer.
    num_prefix: number of leading non-patch tokens (CLS plus registers).
    keep:   B x K indices of the patches that were kept, or None when all patches were seen.
    """

    layers: list[torch.Tensor]
    final: torch.Tensor
    num_prefix: int
    keep: torch.Tensor | None = None

    @property
    def depth(self) -> int:
        return len(self.layers) - 1

    def tokens(self, layer: int) -> torch.Tensor:
        """Tokens of ``layer`` (0..depth); the last layer is returned normalised (``final``)."""
        return self.final if layer in (-1, self.depth) else self.layers[layer]

    def patches(self, layer: int) -> torch.Tensor:
        return self.tokens(layer)[:, self.num_prefix :]

    def pooled(self, layer: int, pool: str = "cls") -> torch.Tensor:
        """One vector per image: the CLS token or the mean of the patch tokens."""
        tokens = self.tokens(layer)
        if pool == "cls":
            return tokens[:, 0]
        if pool == "mean":
            return tokens[:, self.num_prefix :].mean(dim=1)
        raise ValueError(f"pool={pool!r} is invalid: use 'cls' or 'mean'")


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches, linearly projected (a strided convolution)."""

    def __init__(self, patch_size: int, in_channels: int, width: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, width, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # B x N x D


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=qkv_bias)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)  # flash / memory-efficient kernels on CUDA
        return self.proj(x.transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for whole samples during training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, qkv_bias: bool, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = Mlp(width, int(width * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """A ViT for small images that exposes every layer.

    Args:
        image_size: side of the square input images.
        patch_size: side of the square patches; must divide ``image_size``.
        in_channels: image channels (1 for MNIST-like data, 3 for RGB).
        width: token dimension; must be divisible by ``heads``.
        depth: number of transformer blocks.
        heads: attention heads.
        mlp_ratio: hidden width of each MLP relative to ``width``.
        pool: ``"cls"`` or ``"mean"`` (mean of the patch tokens), used by :meth:`embed`.
        registers: extra learned tokens without position (Darcet et al. 2024); 0 disables them.
        drop_path: stochastic-depth rate of the last block, rising linearly from 0 at the first.
        qkv_bias: bias in the query / key / value projection.
        gradient_isolation: ``False`` (end-to-end), ``True`` (detach the residual stream after
            every layer 1..depth-1, so each block learns only from losses on its own output or
            later layers' losses that reach it through its own output), or a list of layer
            indices after which to detach (0 detaches the patch embedding from block 1).
    """

    def __init__(
        self,
        image_size: int = 32,
        patch_size: int = 4,
        in_channels: int = 3,
        width: int = 96,
        depth: int = 6,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        pool: str = "cls",
        registers: int = 0,
        drop_path: float = 0.0,
        qkv_bias: bool = True,
        gradient_isolation: bool | list[int] = False,
    ):
        super().__init__()
        if image_size % patch_size != 0:
            raise ValueError(
                f"image size {image_size} is not divisible by patch size {patch_size}; "
                f"choose a patch size that divides {image_size}"
            )
        if width % heads != 0:
            raise ValueError(f"width {width} is not divisible by heads {heads}; choose heads dividing {width}")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool={pool!r} is invalid: use 'cls' or 'mean'")
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.width, self.depth, self.heads, self.pool = width, depth, heads, pool
        self.grid = image_size // patch_size
        self.num_patches = self.grid**2
        self.num_prefix = 1 + registers

        if gradient_isolation is True:
            isolated = set(range(1, depth))
        elif gradient_isolation is False or gradient_isolation is None:
            isolated = set()
        else:
            isolated = set(int(i) for i in gradient_isolation)
            bad = [i for i in isolated if not 0 <= i < depth]
            if bad:
                raise ValueError(f"gradient_isolation layers {bad} are out of range 0..{depth - 1}")
        self.isolated_layers = frozenset(isolated)

        self.patch_embed = PatchEmbed(patch_size, in_channels, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.registers = nn.Parameter(torch.zeros(1, registers, width)) if registers else None
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, width))
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, qkv_bias, r) for r in rates)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.registers is not None:
            nn.init.trunc_normal_(self.registers, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Patch projection initialised like a linear layer on the flattened patch (as in MAE).
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.proj.bias)

    def positions(self, rows: int, cols: int) -> torch.Tensor:
        """Position embeddings for a rows x cols patch grid: bicubic interpolation of the trained grid
        when it differs, so smaller crops (DINO's local views) reuse the same positions."""
        if rows == cols == self.grid:
            return self.pos_embed
        grid = self.pos_embed.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token", "registers"}

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> ViTOutput:
        """Run the backbone on B x C x H x W float images.

        keep: optional B x K long tensor of patch indices (row-major in the patch grid) to keep;
            the others are dropped after positions are added (MAE's encoder, I-JEPA's context).
        """
        if (images.ndim != 4 or images.shape[1] != self.in_channels
                or images.shape[2] % self.patch_size or images.shape[3] % self.patch_size):
            raise ValueError(
                f"expected images of shape B x {self.in_channels} x H x W with H and W multiples of the patch "
                f"size {self.patch_size} (trained at {self.image_size} x {self.image_size}), got {tuple(images.shape)}"
            )
        x = self.patch_embed(images) + self.positions(images.shape[2] // self.patch_size, images.shape[3] // self.patch_size)
        if keep is not None:
            x = torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        prefix = [self.cls_token.expand(x.shape[0], -1, -1)]
        if self.registers is not None:
            prefix.append(self.registers.expand(x.shape[0], -1, -1))
        x = torch.cat(prefix + [x], dim=1)

        layers = [x]
        for index, block in enumerate(self.blocks):
            if index in self.isolated_layers:
                x = x.detach()
            x = block(x)
            layers.append(x)
        return ViTOutput(layers=layers, final=self.norm(x), num_prefix=self.num_prefix, keep=keep)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled, normalised representation of the last layer (B x D)."""
        return self.forward(images).pooled(self.depth, self.pool)
