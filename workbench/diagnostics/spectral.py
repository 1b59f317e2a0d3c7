"""Spectral diagnostics of embedding matrices (definitions: docs/concepts.md, "Diagnostics").

Every function takes an ``N x D`` tensor on any device, leaves it untouched, computes under
``no_grad`` with autocast disabled (in float64 unless stated), and returns float32 tensors on the
input's device (0-d scalars, 1-d spectra or small dicts of scalars) without synchronising with the
host. Conventions differ and are stated per function: :func:`rankme` uses the singular values of
the *uncentred* Z; :func:`participation_ratio`, :func:`effective_rank` and :func:`alpha_req` use
the eigenvalues of the *centred* sample covariance; :func:`covariance_spectrum` those of the
centred covariance of the *l2-normalised* rows (Jing et al. 2022). Cost is O(N D^2) (a D x D
covariance, never N x N), fine for N ~ 50,000 and D ~ 768.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses.sigreg import SIGReg, epps_pulley, random_directions

# relative spread below which a matrix counts as constant (see _centred)
_CONSTANT_RTOL = 1e-12
# N x directions per chunk in sigreg_statistic (x 17 nodes x cos/sin x 4 bytes: ~140 MB of temporaries)
_SIGREG_CHUNK_ELEMENTS = 1 << 20


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


# ----------------------------------------------------------------------------------------------
# helpers


def _check_matrix(z: torch.Tensor, name: str, min_rows: int = 1) -> None:
    if z.ndim != 2:
        raise ValueError(f"{name} expects an N x D matrix, got shape {tuple(z.shape)}")
    if z.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (samples), got {z.shape[0]}")
    if z.shape[1] < 1:
        raise ValueError(f"{name} needs at least one feature column, got shape {tuple(z.shape)}")


def _centred(x: torch.Tensor) -> torch.Tensor:
    """Column-centred float64 copy of ``x``; exactly zero when ``x`` is constant up to round-off.

    Centring identical float rows in float64 can leave ~1e-17 residues whose "spectrum" is pure
    round-off; a centred matrix whose Frobenius norm is below ``_CONSTANT_RTOL`` (1e-12) times that of
    ``x`` is treated as constant and zeroed (float32 data cannot resolve differences that small).
    No host synchronisation.
    """
    x = x.double()
    xc = x - x.mean(dim=0, keepdim=True)
    spread = xc.square().sum() > _CONSTANT_RTOL**2 * x.square().sum()
    return xc * spread


def _covariance_eigenvalues(z: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """Eigenvalues (float64, descending, clamped at 0) of the centred sample covariance (1/(N-1)).

    ``z`` must already be detached; the covariance is a D x D matrix (cost O(N D^2), no N x N).
    """
    x = z.double()
    if normalize:
        x = F.normalize(x, dim=1)
    x = _centred(x)
    cov = x.T @ x / (x.shape[0] - 1)
    eig = torch.linalg.eigvalsh(cov)
    return eig.flip(0).clamp_min(0.0)


def _entropy_rank(p: torch.Tensor) -> torch.Tensor:
    """exp(-sum p log p) with 0 log 0 = 0 (``p`` already sums to ~1)."""
    return torch.exp(-torch.special.xlogy(p, p).sum())


# ----------------------------------------------------------------------------------------------
# spectra


def singular_values(z: torch.Tensor, center: bool = False) -> torch.Tensor:
    r"""Singular values of ``z`` (``N x D``), descending, ``min(N, D)`` of them.

    .. math:: Z = U \operatorname{diag}(\sigma) V^\top,\qquad \sigma_1 \ge \sigma_2 \ge \dots \ge 0

    Convention: **uncentred** by default (the spectrum RankMe uses, Garrido et al. 2023); with
    ``center=True`` the column means are subtracted first (then :math:`\sigma_k^2 / (N-1)` are the
    eigenvalues of the sample covariance). Computed with an SVD in float64 (accurate for small
    singular values, unlike the square root of the Gram eigenvalues); cost O(N D min(N, D)).

    Returns a 1-D float32 tensor on ``z``'s device. ``z`` is not modified.
    """
    _check_matrix(z, "singular_values")
    with torch.autocast(z.device.type, enabled=False), torch.no_grad():
        x = _centred(z.detach()) if center else z.detach().double()
        return torch.linalg.svdvals(x).float()


def covariance_spectrum(z: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    r"""Eigenvalues of the covariance of the (l2-normalised) embeddings, descending (``D`` of them).

    .. math::

        \tilde z_n = \frac{z_n}{\|z_n\|},\qquad
        C = \frac{1}{N-1} \sum_n (\tilde z_n - \bar{\tilde z})(\tilde z_n - \bar{\tilde z})^\top,
        \qquad \lambda_1 \ge \dots \ge \lambda_D

    C is symmetric positive semi-definite, so its eigenvalues are its singular values: this is the
    spectrum of Jing et al., "Understanding Dimensional Collapse in Contrastive Self-supervised
    Learning", ICLR 2022 (they plot :math:`\log \sigma_k(C)` sorted; a cliff to ~0 marks
    dimensional collapse). Convention: rows l2-normalised when ``normalize=True`` (Jing et al.),
    raw ``z`` otherwise; covariance **centred**, divided by ``N - 1`` (``np.cov``). With
    ``normalize=False`` these are exactly the eigenvalues used by :func:`participation_ratio`,
    :func:`effective_rank` and :func:`alpha_req`.

    Computed from the D x D covariance in float64 (``eigvalsh``; O(N D^2)); round-off negatives
    are clamped to 0, so take ``log`` with a floor. Returns a 1-D float32 tensor on ``z``'s device.
    Needs N >= 2.
    """
    _check_matrix(z, "covariance_spectrum", min_rows=2)
    with torch.autocast(z.device.type, enabled=False), torch.no_grad():
        return _covariance_eigenvalues(z.detach(), normalize=normalize).float()


# ----------------------------------------------------------------------------------------------
# effective dimensionality of the centred covariance


def participation_ratio(z: torch.Tensor) -> torch.Tensor:
    r"""Participation ratio of the **centred** covariance eigenvalues of ``z`` (``N x D``).

    .. math:: \mathrm{PR}(Z) = \frac{\big(\sum_i \lambda_i\big)^2}{\sum_i \lambda_i^2}
        = \frac{\operatorname{tr}(C)^2}{\operatorname{tr}(C^2)}

    with :math:`\lambda_i` the eigenvalues of the sample covariance C of the raw (not normalised)
    embeddings, centred (convention: centred covariance, not RankMe's uncentred singular values).
    Between 1 (one direction) and D (isotropic); rank-k data gives at most k. Used e.g. by Gao et
    al. 2017 ("A theory of multineuronal dimensionality") and Recanatesi et al. 2019.

    Computed in float64 from the D x D covariance (no eigendecomposition needed). Constant ``z``
    (no variance, e.g. a CLS token before the first block; relative spread below 1e-12) gives 0,
    the rank of the zero covariance. Returns a 0-d float32 tensor on ``z``'s device. Needs N >= 2.
    """
    _check_matrix(z, "participation_ratio", min_rows=2)
    with torch.autocast(z.device.type, enabled=False), torch.no_grad():
        x = _centred(z.detach())
        cov = x.T @ x / (x.shape[0] - 1)
        num, den = torch.diagonal(cov).sum().square(), cov.square().sum()
        return torch.where(den > 0, num / den.clamp_min(torch.finfo(torch.float64).tiny), 0.0).float()


def effective_rank(z: torch.Tensor) -> torch.Tensor:
    r"""Effective rank (Roy & Vetterli 2007) of the **centred** covariance of ``z`` (``N x D``).

    .. math::

        p_i = \frac{\lambda_i}{\sum_j \lambda_j},\qquad
        \mathrm{erank}(Z) = \exp\Big(-\sum_i p_i \log p_i\Big)\quad (0 \log 0 = 0)

    Convention: :math:`\lambda_i` are the eigenvalues of the centred sample covariance (the
    squared singular values of the centred Z), **not** the singular values of the uncentred Z
    that :func:`rankme` uses, and no ``eps`` is added. Roy & Vetterli, "The effective rank: a
    measure of effective dimensionality", EUSIPCO 2007, define it on a matrix's singular values;
    applied to the covariance it weights directions by variance. Between 1 and D; rank-k data gives
    at most k; an isotropic Gaussian ~D (slightly less: finite-N spread of the eigenvalues).

    Float64 eigendecomposition of the D x D covariance. Constant ``z`` (relative spread below
    1e-12) gives 0, the rank of the zero covariance. Returns a 0-d float32 tensor on ``z``'s
    device. Needs N >= 2.
    """
    _check_matrix(z, "effective_rank", min_rows=2)
    with torch.autocast(z.device.type, enabled=False), torch.no_grad():
        lam = _covariance_eigenvalues(z.detach())
        total = lam.sum()
        erank = _entropy_rank(lam / total.clamp_min(torch.finfo(torch.float64).tiny))
        return torch.where(total > 0, erank, 0.0).float()


def alpha_req(z: torch.Tensor, low: int = 5, high: int = 100) -> dict[str, torch.Tensor]:
    r"""alpha-ReQ: power-law decay exponent of the centred covariance spectrum, with the fit's R^2.

    With :math:`\lambda_1 \ge \lambda_2 \ge \dots` the eigenvalues of the **centred** sample
    covariance of ``z`` (``N x D``, raw embeddings) and 1-based ranks i, fit by weighted least
    squares with weights :math:`w_i = 1/i`:

    .. math::

        \log \lambda_i \approx -\alpha \log i + b,\qquad i \in [\mathrm{low}, \min(\mathrm{high}, D/2))

        R^2 = 1 - \frac{\sum_i w_i (y_i - \hat y_i)^2}{\sum_i w_i (y_i - \bar y_w)^2},\quad
        y_i = \log \lambda_i,\ \bar y_w = \frac{\sum_i w_i y_i}{\sum_i w_i}

    (the weighted R^2 of the weighted fit). Large alpha: a few dominant directions; alpha near 0:
    white noise; alpha ~ 1 was found to go with good downstream performance. Reference: Agrawal
    et al., "alpha-ReQ: Assessing Representation Quality in Self-Supervised Learning by measuring
    eigenspectrum decay", NeurIPS 2022.

    Ranges: the default is ranks 5 <= i < min(100, D/2). When that holds fewer than 3 ranks (small
    D, e.g. D < 16), the fit falls back to **all ranks 1 <= i <= floor(D/2)**; if that still has fewer
    than 3 ranks (D < 6), ``ValueError``. Eigenvalues at or below the float64 noise floor
    (``lambda_1 * D * 2.2e-16``: exact rank deficiency, e.g. N < D) are left out of the fit; with
    fewer than 3 left, alpha and r2 are NaN (so does constant ``z``: there is no spectrum to fit).
    Float32 data of low rank still have eigenvalues above that floor, so dimensional collapse in a
    network shows as a large alpha, not NaN.

    Returns ``{"alpha": ..., "r2": ...}``, 0-d float32 tensors on ``z``'s device. Needs N >= 2.
    """
    _check_matrix(z, "alpha_req", min_rows=2)
    d = z.shape[1]
    if low < 1 or high <= low:
        raise ValueError(f"alpha_req: need 1 <= low < high, got low={low}, high={high}")
    ranks = [i for i in range(low, high) if i < d / 2]
    if len(ranks) < 3:
        ranks = [i for i in range(1, d // 2 + 1)]
    if len(ranks) < 3:
        raise ValueError(
            f"alpha_req: D={d} is too small for a power-law fit (needs at least 3 ranks in [1, D/2], i.e. D >= 6)"
        )
    with torch.autocast(z.device.type, enabled=False), torch.no_grad():
        lam = _covariance_eigenvalues(z.detach())
        i = torch.tensor(ranks, dtype=torch.float64, device=lam.device)
        y_all = lam[i.long() - 1]
        floor = lam[0] * d * torch.finfo(torch.float64).eps
        keep = y_all > floor
        nan = torch.tensor(float("nan"), device=z.device)
        if int(keep.sum()) < 3:
            return {"alpha": nan.clone(), "r2": nan.clone()}
        i, y = i[keep], torch.log(y_all[keep])
        x = torch.log(i)
        w = 1.0 / i
        w = w / w.sum()
        xm, ym = (w * x).sum(), (w * y).sum()
        slope = (w * (x - xm) * (y - ym)).sum() / (w * (x - xm).square()).sum()
        intercept = ym - slope * xm
        ss_res = (w * (y - (slope * x + intercept)).square()).sum()
        ss_tot = (w * (y - ym).square()).sum()
        return {"alpha": (-slope).float(), "r2": (1.0 - ss_res / ss_tot).float()}


# ----------------------------------------------------------------------------------------------
# collapse indicators


def std_of_normalized(z: torch.Tensor) -> torch.Tensor:
    r"""Mean per-dimension standard deviation of the l2-normalised embeddings (SimSiam's monitor).

    .. math:: s(Z) = \frac1D \sum_{d=1}^{D} \operatorname{std}_n\Big(\frac{z_{n}}{\|z_{n}\|}\Big)_d

    with the unbiased (N - 1) standard deviation, as ``torch.std``. Complete collapse (all rows
    equal up to scale) gives 0; embeddings spread uniformly on the sphere give ~1/sqrt(D).
    Reference: Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021 (Fig. 2).
    Zero rows stay zero after normalisation. Float64; returns a 0-d float32 tensor on ``z``'s
    device. Needs N >= 2.
    """
    _check_matrix(z, "std_of_normalized", min_rows=2)
    with torch.autocast(z.device.type, enabled=False), torch.no_grad():
        u = F.normalize(z.detach().double(), dim=1)
        return u.std(dim=0).mean().float()


def sigreg_statistic(
    z: torch.Tensor, num_directions: int = 256, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""SIGReg statistic of ``z`` (``N x D``): distance of its law from the isotropic Gaussian N(0, I).

    .. math:: \mathrm{SIGReg}(Z) = \frac1M \sum_{m=1}^{M} T_{EP}(Z a_m),\qquad a_m \sim \mathrm{Unif}(S^{D-1})

    with :math:`T_{EP}` the Epps-Pulley statistic against N(0, 1) (``t_max = 3``, 17 nodes). Thin
    wrapper around :class:`workbench.losses.SIGReg` (Balestriero & LeCun, "LeJEPA", 2025), under
    ``no_grad``; for large N the same directions are projected in chunks (:func:`epps_pulley` per
    chunk, averaged), which bounds memory and gives the same value. Convention: raw ``z``, neither
    centred nor whitened, so scale and offset count. About 1.05 for a standard normal sample;
    grows ~N under collapse.

    ``generator=None`` uses a fresh CPU generator seeded with 0, so repeated calls (e.g. every
    epoch on a fixed probe set) use the same ``num_directions`` directions; pass a generator to
    vary them. Distributed: like the loss, the statistic is a **collective** under an initialised
    process group (the characteristic-function means are all-reduced): call it on every rank with
    that rank's shard, or outside a process group.

    Returns a 0-d float32 tensor on ``z``'s device.
    """
    _check_matrix(z, "sigreg_statistic")
    if num_directions < 1:
        raise ValueError(f"num_directions={num_directions} is invalid: use a positive integer")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    with torch.autocast(z.device.type, enabled=False), torch.no_grad():
        x = z.detach().float()
        n = x.shape[0]
        if n * num_directions <= _SIGREG_CHUNK_ELEMENTS:
            return SIGReg(num_directions=num_directions)(x, generator=generator)
        # the same directions as SIGReg draws, projected in chunks to bound the N x M x 17 temporaries
        a = random_directions(x.shape[1], num_directions, x.device, generator)
        step = max(1, _SIGREG_CHUNK_ELEMENTS // n)
        total = torch.zeros((), dtype=torch.float32, device=x.device)
        for start in range(0, num_directions, step):
            total += epps_pulley(x @ a[:, start : start + step]).sum()
        return total / num_directions


__all__ = [
    "alpha_req",
    "covariance_spectrum",
    "effective_rank",
    "participation_ratio",
    "rankme",
    "sigreg_statistic",
    "singular_values",
    "std_of_normalized",
]
