"""Pixel reconstruction losses (MAE) and the patch layout they share with the ViT."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..distributed import global_batch_mean


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    r"""``B x C x H x W`` images -> ``B x N x (p * p * C)`` patches.

    Patch order is the token order of :class:`workbench.models.vit.PatchEmbed` (a strided ``Conv2d``
    flattened row-major): patch ``(i, j)`` -- row ``i``, column ``j`` of the ``H/p x W/p`` grid --
    is token ``i * (W/p) + j``. Inside a patch, pixels are flattened in ``(p, p, C)`` order: row,
    then column, then channel (the layout of the official MAE code). Inverse: :func:`unpatchify`.
    """
    if images.ndim != 4:
        raise ValueError(f"patchify expects B x C x H x W images, got shape {tuple(images.shape)}")
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not divisible by patch_size={p}")
    x = images.reshape(b, c, h // p, p, w // p, p)
    x = x.permute(0, 2, 4, 3, 5, 1)  # B x gh x gw x p x p x C
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(
    patches: torch.Tensor, patch_size: int, channels: int, grid: tuple[int, int] | None = None
) -> torch.Tensor:
    """``B x N x (p * p * C)`` patches -> ``B x C x H x W`` images (inverse of :func:`patchify`).

    ``grid = (rows, cols)`` of patches; default: a square grid (``N`` must be a perfect square).
    """
    b, n, d = patches.shape
    p = patch_size
    if d != p * p * channels:
        raise ValueError(f"patch dimension {d} != patch_size^2 * channels = {p * p * channels}")
    if grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} patches do not form a square grid: pass grid=(rows, cols)")
        grid = (side, side)
    gh, gw = grid
    if gh * gw != n:
        raise ValueError(f"grid {grid} does not hold {n} patches")
    x = patches.reshape(b, gh, gw, p, p, channels)
    x = x.permute(0, 5, 1, 3, 2, 4)  # B x C x gh x p x gw x p
    return x.reshape(b, channels, gh * p, gw * p)


def pixel_targets(images: torch.Tensor, patch_size: int, norm_pix: bool = True, eps: float = 1e-6) -> torch.Tensor:
    r"""Float32 patch targets, optionally normalised per patch: :math:`(x - \mu_p) / \sqrt{\sigma_p^2 + \epsilon}`.

    :math:`\mu_p, \sigma_p^2` are the mean and the **unbiased** variance over the ``p * p * C``
    values of each patch (``Tensor.var``'s default, as in the official MAE code).
    """
    target = patchify(images.float(), patch_size)
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / torch.sqrt(var + eps)
    return target


def _masked_mean(per_patch: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sum(per_patch * weight) / sum(weight) over the batch concatenated across ranks."""
    stats = torch.stack([(per_patch * weight).sum(dim=1), weight.sum(dim=1)], dim=1)  # B x 2
    means, _ = global_batch_mean(stats)
    return means[0] / means[1].clamp_min(torch.finfo(means.dtype).tiny)


class MAELoss(nn.Module):
    r"""Masked-autoencoder loss: mean squared error on the masked patches only.

    .. math::

        \mathcal{L} = \frac{\sum_{b,n} m_{bn}\, \frac{1}{P}\sum_{k} (\hat x_{bnk} - x_{bnk})^2}{\sum_{b,n} m_{bn}}

    with :math:`x = ` :func:`patchify` ``(images)`` (``P = p * p * C`` values per patch), normalised
    per patch when ``norm_pix`` (see :func:`pixel_targets`), and :math:`m_{bn} = 1` for masked
    (hidden) patches. Visible patches do not count.

    Reference: He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022. Defaults:
    ``norm_pix = True`` (normalised pixel targets; their best setting), ``eps = 1e-6``; mask ratio
    0.75 (set by the masking, not here).

    ``forward(pred, images, mask, patch_size)``:

    * ``pred``: ``B x N x (p * p * C)`` decoder outputs in :func:`patchify` order;
    * ``images``: ``B x C x H x W`` (the normalised input images);
    * ``mask``: ``B x N`` bool (True = masked, i.e. hidden from the encoder) or 0/1 float;
    * ``patch_size``: ``p``.

    Returns the float32 scalar (global over ranks; 0 when no patch is masked).
    """

    def __init__(self, norm_pix: bool = True, eps: float = 1e-6):
        super().__init__()
        self.norm_pix = norm_pix
        self.eps = eps

    def forward(self, pred: torch.Tensor, images: torch.Tensor, mask: torch.Tensor, patch_size: int) -> torch.Tensor:
        with torch.autocast(pred.device.type, enabled=False):
            target = pixel_targets(images, patch_size, self.norm_pix, self.eps)
            if pred.shape != target.shape:
                raise ValueError(f"pred has shape {tuple(pred.shape)}, the patchified images {tuple(target.shape)}")
            if mask.shape != target.shape[:2]:
                raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {tuple(target.shape[:2])} (B x N)")
            per_patch = (pred.float() - target).square().mean(dim=-1)  # B x N
            return _masked_mean(per_patch, mask.float())

    def extra_repr(self) -> str:
        return f"norm_pix={self.norm_pix}, eps={self.eps}"


class PixelMSELoss(nn.Module):
    r"""Full-image reconstruction: mean squared error over all patches and pixels.

    :math:`\mathcal{L} = \frac{1}{BNP}\sum_{b,n,k} (\hat x_{bnk} - x_{bnk})^2` with the same
    targets as :class:`MAELoss` (``norm_pix`` off by default: plain pixels). For decoders that
    reconstruct every patch, e.g. a reconstruction term on an intermediate layer (InfoPro,
    LocalMIM-style step-wise losses).

    ``forward(pred, images, patch_size)`` with ``pred``: ``B x N x (p * p * C)`` in
    :func:`patchify` order; returns the float32 scalar (global over ranks).
    """

    def __init__(self, norm_pix: bool = False, eps: float = 1e-6):
        super().__init__()
        self.norm_pix = norm_pix
        self.eps = eps

    def forward(self, pred: torch.Tensor, images: torch.Tensor, patch_size: int) -> torch.Tensor:
        with torch.autocast(pred.device.type, enabled=False):
            target = pixel_targets(images, patch_size, self.norm_pix, self.eps)
            if pred.shape != target.shape:
                raise ValueError(f"pred has shape {tuple(pred.shape)}, the patchified images {tuple(target.shape)}")
            per_sample = (pred.float() - target).square().mean(dim=(1, 2))
            return global_batch_mean(per_sample)[0]

    def extra_repr(self) -> str:
        return f"norm_pix={self.norm_pix}, eps={self.eps}"
