"""Pixel reconstruction (MAE, the pixel ladder, full-image reconstruction) and the patch layout it shares
with the ViT."""

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


class PatchReconstructionLoss(nn.Module):
    r"""Mean squared error between predicted patches and the image's (optionally normalised) pixels.

    .. math::

        \mathcal{L} = \frac{1}{B K P} \sum_{b=1}^{B} \sum_{k=1}^{K} \sum_{j=1}^{P}
            \big(\hat x_{bkj} - x_{b,\,i_{bk},\,j}\big)^2

    with :math:`x = ` :func:`pixel_targets` ``(images)`` (``P = p * p * C`` values per patch, in
    :func:`patchify` order, normalised per patch when ``norm_pix``) and :math:`i_{bk}` the index of
    the k-th predicted patch of image b: the hidden patches for a masked autoencoder, every patch
    (``indices=None``) for a full reconstruction.

    References: MAE (He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022): 75%
    of the patches hidden, loss on the hidden ones only, ``norm_pix = True`` (their best setting),
    ``eps = 1e-6``. The same loss on a blurred or downsampled image at an intermediate layer is
    the pixel ladder (LocalMIM, Wang et al. 2023; InfoPro's reconstruction term, Wang et al. 2021).

    ``forward(pred, images, patch_size, indices=None)``:

    * ``pred``: ``B x K x (p * p * C)`` predictions, row k for patch ``indices[:, k]``;
    * ``images``: ``B x C x H x W`` float images (the target);
    * ``indices``: ``B x K`` long patch indices (row-major, as the ViT's tokens), or None for all
      ``N`` patches in order (then ``K = N``).

    Returns the float32 scalar (the mean over the batch concatenated across ranks).

    Example::

        loss_fn = PatchReconstructionLoss(norm_pix=True)
        images = torch.rand(8, 3, 32, 32)                        # 64 patches of 4 x 4 x 3 = 48 values
        hidden = torch.randperm(64)[:48].sort().values.expand(8, -1)
        loss = loss_fn(torch.zeros(8, 48, 48), images, 4, hidden)  # 1.0 with norm_pix: each target has unit variance
    """

    def __init__(self, norm_pix: bool = True, eps: float = 1e-6):
        super().__init__()
        self.norm_pix = norm_pix
        self.eps = eps

    def forward(self, pred: torch.Tensor, images: torch.Tensor, patch_size: int,
                indices: torch.Tensor | None = None) -> torch.Tensor:
        with torch.autocast(pred.device.type, enabled=False):
            target = pixel_targets(images, patch_size, self.norm_pix, self.eps)
            if indices is not None:
                if indices.ndim != 2 or indices.shape[0] != target.shape[0]:
                    raise ValueError(f"indices has shape {tuple(indices.shape)}, expected B x K with B = {target.shape[0]}")
                target = torch.gather(target, 1, indices.unsqueeze(-1).expand(-1, -1, target.shape[-1]))
            if pred.shape != target.shape:
                raise ValueError(f"pred has shape {tuple(pred.shape)}, the target patches {tuple(target.shape)}")
            per_sample = (pred.float() - target).square().mean(dim=(1, 2))
            return global_batch_mean(per_sample)[0]

    def extra_repr(self) -> str:
        return f"norm_pix={self.norm_pix}, eps={self.eps}"
