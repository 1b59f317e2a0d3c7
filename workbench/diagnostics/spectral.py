"""Spectral diagnostics of embedding matrices."""

from __future__ import annotations

import torch


def rankme(z: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    r"""RankMe: the entropy-based effective rank of the *uncentred* embeddings ``z`` (``N x D``).

    .. math::

        p_k = \frac{\sigma_k}{\sum_j \sigma_j} + \epsilon,\qquad
        \mathrm{RankMe}(Z) = \exp\Big(-\sum_k p_k \log p_k\Big)

    with :math:`\sigma_k` the singular values of Z (computed in float64; Z is **not** centred).
    Point collapse gives ~1, rank-k data at most ~k, an isotropic Gaussian ~``min(N, D)``.

    Reference: Garrido et al., "RankMe: Assessing the Downstream Performance of Pretrained
    Self-Supervised Representations by Their Rank", ICML 2023 (``eps = 1e-7``; ~25,600 samples in
    the paper). The value grows with N for small N: compare runs on the same probe set, and record N.
    Computed on this process's samples only (gather them first under DDP).

    Returns a 0-d float32 tensor on ``z``'s device.
    """
    if z.ndim != 2:
        raise ValueError(f"rankme expects an N x D matrix, got shape {tuple(z.shape)}")
    with torch.autocast(z.device.type, enabled=False), torch.no_grad():
        sigma = torch.linalg.svdvals(z.detach().double())
        p = sigma / sigma.sum() + eps
        return torch.exp(-(p * torch.log(p)).sum()).float()
