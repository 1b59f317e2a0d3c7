"""Geometric diagnostics: alignment / uniformity, token over-smoothing, invariance, LiDAR.

Definitions: docs/concepts.md, "Diagnostics". Every function takes tensors on any device, leaves them untouched,
computes under ``no_grad`` with autocast disabled (float64 unless stated) and returns 0-d float32
tensors on the input's device, without synchronising with the host. Costs are bounded: O(N D)
or O(N D^2) work, and the one N x N quantity (:func:`uniformity`) is computed on a subsample of
at most ``max_samples`` rows, in blocks of rows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _check(z: torch.Tensor, name: str, ndim: int, min_rows: int = 1) -> None:
    if z.ndim != ndim:
        shape = {2: "an N x D", 3: "a B x T x D"}[ndim]
        raise ValueError(f"{name} expects {shape} tensor, got shape {tuple(z.shape)}")
    if z.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} samples along dim 0, got {z.shape[0]}")


def alignment(x: torch.Tensor, y: torch.Tensor, alpha: float = 2) -> torch.Tensor:
    r"""Alignment of positive pairs (Wang & Isola 2020): mean distance between l2-normalised pairs.

    .. math:: \mathcal{L}_{align} = \frac1N \sum_n \big\| f(x_n) - f(y_n) \big\|_2^{\alpha},
        \qquad f(v) = v / \|v\|

    ``x`` and ``y`` are ``N x D`` embeddings of N positive pairs (row n of each). 0 for identical
    pairs, 4 for antipodal ones (alpha = 2); lower is better. Reference: Wang & Isola,
    "Understanding Contrastive Representation Learning through Alignment and Uniformity on the
    Hypersphere", ICML 2020 (alpha = 2). Returns a 0-d float32 tensor.
    """
    _check(x, "alignment", 2)
    if x.shape != y.shape:
        raise ValueError(
            f"alignment expects two tensors of the same N x D shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    with torch.autocast(x.device.type, enabled=False), torch.no_grad():
        u = F.normalize(x.detach().double(), dim=1)
        v = F.normalize(y.detach().double(), dim=1)
        return (u - v).norm(dim=1).pow(alpha).mean().float()


def _subsample(z: torch.Tensor, max_samples: int, generator: torch.Generator | None) -> torch.Tensor:
    n = z.shape[0]
    if n <= max_samples:
        return z
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    idx = torch.randperm(n, generator=generator, device=generator.device)[:max_samples]
    return z[idx.to(z.device)]


def uniformity(
    z: torch.Tensor, t: float = 2, max_samples: int = 4096, generator: torch.Generator | None = None,
    block: int = 1024,
) -> torch.Tensor:
    r"""Uniformity on the hypersphere (Wang & Isola 2020): log of the mean Gaussian potential.

    .. math:: \mathcal{L}_{uniform} = \log \frac{1}{M(M-1)} \sum_{i \ne j}
        \exp\big(-t \|f(z_i) - f(z_j)\|_2^2\big),\qquad f(v) = v / \|v\|

    over the distinct pairs of the (sub)sample. Complete collapse gives 0; the more uniform on
    the sphere, the lower (bounded below by about :math:`-t \cdot 2 = -4` for t = 2 in high
    dimension). Reference: Wang & Isola, ICML 2020 (t = 2).

    Bounded cost: if N > ``max_samples`` a random subset of ``max_samples`` rows (without
    replacement) is used, drawn with ``generator`` (``None``: a fresh CPU generator seeded with 0,
    so repeated calls on the same data use the same subset). The squared distances come from the
    Gram matrix in float64 (``2 - 2 cos``), ``block`` rows at a time, and the mean is a
    ``logsumexp`` over the blocks' ``logsumexp`` (the same number as over all pairs at once): memory
    is O(block x M), never M x M. Needs at least 2 rows. Returns a 0-d float32 tensor.
    """
    _check(z, "uniformity", 2, min_rows=2)
    if max_samples < 2:
        raise ValueError(f"uniformity: max_samples={max_samples} is invalid: use at least 2")
    if t <= 0:
        raise ValueError(f"uniformity: t={t} is invalid: use a positive number")
    if block < 1:
        raise ValueError(f"uniformity: block={block} is invalid: use a positive number of rows")
    with torch.autocast(z.device.type, enabled=False), torch.no_grad():
        u = F.normalize(_subsample(z.detach(), max_samples, generator).double(), dim=1)
        m = u.shape[0]
        parts = []
        for start in range(0, m, block):
            rows = u[start : start + block]
            # -t ||u_i - u_j||^2 = -t (2 - 2 u_i.u_j), in place in one block x M buffer, clamped at 0
            logits = (rows @ u.T).mul_(2.0 * t).sub_(2.0 * t).clamp_max_(0.0)
            k = torch.arange(rows.shape[0], device=u.device)
            logits[k, start + k] = float("-inf")  # the pairs (i, i) are not pairs
            parts.append(torch.logsumexp(logits.flatten(), dim=0))
        return (torch.logsumexp(torch.stack(parts), dim=0) - math.log(m * (m - 1))).float()


def token_cosine(tokens: torch.Tensor) -> torch.Tensor:
    r"""Centred token cosine: mean pairwise cosine between an image's tokens, dataset mean removed.

    With tokens :math:`h_{b,t}` (``B x T x D``: B images, T tokens each) and the dataset-mean token
    :math:`\mu = \frac{1}{BT} \sum_{b,t} h_{b,t}` (over all images and positions):

    .. math::

        u_{b,t} = \frac{h_{b,t} - \mu}{\|h_{b,t} - \mu\|},\qquad
        \mathrm{tc} = \frac1B \sum_b \frac{1}{T(T-1)} \sum_{t \ne s} u_{b,t}^\top u_{b,s}
        = \frac1B \sum_b \frac{\|\sum_t u_{b,t}\|^2 - \sum_t \|u_{b,t}\|^2}{T(T-1)}

    (diagonal excluded; computed in O(B T D) through the per-image sum). Subtracting the mean token
    matters: ViT tokens share a large offset that makes raw cosines ~1 at every layer. Near 0 for
    independent tokens; near 1 when the tokens of each image are identical (over-smoothing) but
    images differ. A token exactly equal to the mean counts as a zero vector (cosine 0).
    Over-smoothing in ViTs: e.g. Gong et al. 2021, "Vision Transformers with Patch Diversification";
    Wang et al. 2022, "Anti-Oversmoothing in Deep Vision Transformers". Needs T >= 2.
    Returns a 0-d float32 tensor.
    """
    _check(tokens, "token_cosine", 3, min_rows=1)
    b, t, _ = tokens.shape
    if t < 2:
        raise ValueError(f"token_cosine needs at least 2 tokens per image, got shape {tuple(tokens.shape)}")
    with torch.autocast(tokens.device.type, enabled=False), torch.no_grad():
        h = tokens.detach().double()
        h = h - h.mean(dim=(0, 1), keepdim=True)
        u = F.normalize(h, dim=2)
        total = u.sum(dim=1).square().sum(dim=1)  # B
        diag = u.square().sum(dim=(1, 2))  # B (T, less the zero tokens)
        return ((total - diag) / (t * (t - 1))).mean().float()


def residual_ratio(tokens: torch.Tensor) -> torch.Tensor:
    r"""Token residual ratio: the share of each image's tokens not explained by their mean token.

    For image b with tokens :math:`H_b` (``T x D``) and mean token :math:`\bar h_b`:

    .. math:: \mathrm{rr} = \frac1B \sum_b \frac{\|H_b - \mathbf{1}\bar h_b^\top\|_F}{\|H_b\|_F}

    Convention: uncentred denominator (no dataset mean removed), per image, averaged over images.
    0 when the tokens of each image are identical (complete over-smoothing); about
    :math:`\sqrt{1 - 1/T}` for i.i.d. zero-mean tokens; small when tokens share a large common
    offset. Cf. Dong et al., "Attention is not all you need: pure attention loses rank doubly
    exponentially with depth", ICML 2021 (the residual :math:`H - \mathbf{1} \bar h^\top`).
    An all-zero image contributes 0. Input ``B x T x D``; returns a 0-d float32 tensor.
    """
    _check(tokens, "residual_ratio", 3, min_rows=1)
    with torch.autocast(tokens.device.type, enabled=False), torch.no_grad():
        h = tokens.detach().double()
        res = (h - h.mean(dim=1, keepdim=True)).flatten(1).norm(dim=1)
        tot = h.flatten(1).norm(dim=1)
        ratio = torch.where(tot > 0, res / tot.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(tot))
        return ratio.mean().float()


def invariance_score(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    r"""Baseline-corrected view invariance: same-image cosine minus different-image cosine.

    With :math:`u_i = z^{(1)}_i / \|z^{(1)}_i\|` and :math:`v_i = z^{(2)}_i / \|z^{(2)}_i\|` the
    normalised embeddings of two augmentations of image i (``N x D`` each, row i = image i):

    .. math::

        \mathrm{inv} = \frac1N \sum_i u_i^\top v_i - \frac{1}{N(N-1)} \sum_{i \ne j} u_i^\top v_j,
        \qquad \sum_{i \ne j} u_i^\top v_j = \Big(\sum_i u_i\Big)^\top \Big(\sum_j v_j\Big) - \sum_i u_i^\top v_i

    (the off-diagonal mean in O(N D), no N x N matrix). About 1 for identical views of embeddings
    spread over the sphere; about 0 for views unrelated to the image, and also under collapse
    (every cosine is 1, so the baseline removes it): raw positive-pair cosine alone is misleading.
    Needs N >= 2. Returns a 0-d float32 tensor.
    """
    _check(z1, "invariance_score", 2, min_rows=2)
    if z1.shape != z2.shape:
        raise ValueError(
            f"invariance_score expects two tensors of the same N x D shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    with torch.autocast(z1.device.type, enabled=False), torch.no_grad():
        u = F.normalize(z1.detach().double(), dim=1)
        v = F.normalize(z2.detach().double(), dim=1)
        n = u.shape[0]
        pos = (u * v).sum()
        off = u.sum(dim=0) @ v.sum(dim=0) - pos
        return (pos / n - off / (n * (n - 1))).float()


def lidar(z: torch.Tensor, eps: float = 1e-8, delta: float = 1e-4) -> torch.Tensor:
    r"""LiDAR (Thilak et al. 2024): entropy-rank of the LDA matrix of images vs their augmentations.

    ``z`` is ``n x q x D``: q augmentations (views) of each of n images; each image is a surrogate
    class. With :math:`\mu_x = \frac1q \sum_i z_{x,i}` and :math:`\mu = \frac1n \sum_x \mu_x`:

    .. math::

        \Sigma_b = \frac{1}{n-1} \sum_x (\mu_x - \mu)(\mu_x - \mu)^\top,\qquad
        \Sigma_w = \frac{1}{n(q-1)} \sum_{x,i} (z_{x,i} - \mu_x)(z_{x,i} - \mu_x)^\top + \delta I

        \Sigma_{lidar} = \Sigma_w^{-1/2} \Sigma_b \Sigma_w^{-1/2},\qquad
        p_k = \frac{\lambda_k}{\sum_j \lambda_j} + \epsilon,\qquad
        \mathrm{LiDAR} = \exp\Big(-\sum_k p_k \log p_k\Big)

    Reference: Thilak et al., "LiDAR: Sensing Linear Probing Performance in Joint Embedding SSL
    Architectures", ICLR 2024 (:math:`\delta = 10^{-4}`, :math:`\epsilon = 10^{-8}`, RankMe's
    convention for eps). The eigenvalues of :math:`\Sigma_w^{-1/2}\Sigma_b\Sigma_w^{-1/2}` equal
    those of :math:`L^{-1}\Sigma_b L^{-\top}` with :math:`\Sigma_w = LL^\top` (Cholesky), which is
    what is computed (float64, O(n q D^2 + D^3)); round-off negatives are clamped to 0.

    At most min(n - 1, D) (Sigma_b has rank <= n - 1); about n - 1 for well-separated image means
    with small within-image noise; about 1 when the image means vary along one direction only,
    and 1 under complete collapse (all eigenvalues 0: every p_k = eps). Note that when the image
    means differ only by the augmentation noise, :math:`\Sigma_b \approx \Sigma_w / q` and LiDAR
    is high: the metric measures discriminability relative to the within-image noise.
    Needs n >= 2 and q >= 2. Returns a 0-d float32 tensor.
    """
    if z.ndim != 3:
        raise ValueError(f"lidar expects an n x q x D tensor (n images, q augmentations), got shape {tuple(z.shape)}")
    n, q, d = z.shape
    if n < 2 or q < 2:
        raise ValueError(f"lidar needs at least 2 images and 2 augmentations each, got n={n}, q={q}")
    with torch.autocast(z.device.type, enabled=False), torch.no_grad():
        x = z.detach().double()
        means = x.mean(dim=1)  # n x D
        cb = means - means.mean(dim=0, keepdim=True)
        sigma_b = cb.T @ cb / (n - 1)
        cw = (x - means.unsqueeze(1)).reshape(n * q, d)
        sigma_w = cw.T @ cw / (n * (q - 1))
        sigma_w.diagonal().add_(delta)
        chol = torch.linalg.cholesky(sigma_w)
        a = torch.linalg.solve_triangular(chol, sigma_b, upper=False)  # L^-1 Sb
        m = torch.linalg.solve_triangular(chol, a.T, upper=False)  # L^-1 (L^-1 Sb)^T = L^-1 Sb L^-T
        lam = torch.linalg.eigvalsh(0.5 * (m + m.T)).clamp_min(0.0)
        p = lam / lam.sum().clamp_min(torch.finfo(torch.float64).tiny) + eps
        return torch.exp(-(p * torch.log(p)).sum()).float()


__all__ = ["alignment", "invariance_score", "lidar", "residual_ratio", "token_cosine", "uniformity"]
