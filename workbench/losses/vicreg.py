"""VICReg: variance, invariance and covariance regularisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import gather_with_grad


def _as_matrix(z: torch.Tensor) -> torch.Tensor:
    if z.ndim < 2:
        raise ValueError(f"expected N x D embeddings, got shape {tuple(z.shape)}")
    return z.float().reshape(-1, z.shape[-1])


def _variance(z: torch.Tensor, eps: float) -> torch.Tensor:
    std = torch.sqrt(z.var(dim=0) + eps)  # unbiased variance, as in the official code
    return F.relu(1.0 - std).mean()


def _covariance(z: torch.Tensor) -> torch.Tensor:
    n, d = z.shape
    zc = z - z.mean(dim=0)
    cov = zc.T @ zc / (n - 1)
    off_diagonal = cov - torch.diag_embed(torch.diagonal(cov))
    return off_diagonal.square().sum() / d


def variance_loss(z: torch.Tensor, eps: float = 1e-4, gather: bool = True) -> torch.Tensor:
    r"""VICReg's variance hinge for one branch.

    :math:`v(z) = \frac1D \sum_d \max(0, 1 - \sqrt{\mathrm{Var}(z_{\cdot d}) + \epsilon})`.

    ``Var`` is the unbiased variance over the N samples (official code). 0 when every dimension
    has standard deviation at least ~1. ``z``: ``N x D`` (leading dims are flattened into samples,
    e.g. ``B x T x D`` tokens). With ``gather`` (default), the statistic is taken over the batch
    concatenated across ranks (with gradient; see :mod:`workbench.distributed`). Float32 scalar.
    """
    with torch.autocast(z.device.type, enabled=False):
        z = _as_matrix(gather_with_grad(z) if gather else z)
        return _variance(z, eps)


def covariance_loss(z: torch.Tensor, gather: bool = True) -> torch.Tensor:
    r"""VICReg's covariance penalty for one branch: :math:`\frac1D \sum_{i \ne j} C_{ij}^2`.

    :math:`C = z_c^\top z_c / (N - 1)` with :math:`z_c` the column-centred embeddings. 0 for
    decorrelated dimensions. Same input conventions as :func:`variance_loss`.
    """
    with torch.autocast(z.device.type, enabled=False):
        z = _as_matrix(gather_with_grad(z) if gather else z)
        return _covariance(z)


class VICRegLoss(nn.Module):
    r"""VICReg loss between two branches ``x``, ``y`` (``B x D`` projector outputs).

    .. math::

        \mathcal{L} = \lambda\, \frac{1}{BD}\sum_{b,d} (x_{bd} - y_{bd})^2
          + \mu\, \frac{v(x) + v(y)}{2} + \nu\, \big(c(x) + c(y)\big)

    with the variance hinge :math:`v(z) = \frac1D \sum_d \max(0, 1 - \sqrt{\mathrm{Var}(z_{\cdot d}) + \epsilon})`
    (unbiased variance) and the covariance penalty :math:`c(z) = \frac1D \sum_{i\ne j} C(z)_{ij}^2`,
    :math:`C(z) = z_c^\top z_c / (B - 1)`.

    Reference: Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
    Self-Supervised Learning", ICLR 2022. Defaults (paper): ``sim_weight`` :math:`\lambda = 25`,
    ``var_weight`` :math:`\mu = 25`, ``cov_weight`` :math:`\nu = 1`, ``eps = 1e-4``.

    Distributed: both branches are gathered from all ranks with gradient (like the official
    ``FullGatherLayer``) and all three terms are computed on the global batch, so every rank
    returns the single-process value of the concatenated batch.

    ``forward(x, y)`` returns the float32 scalar; :meth:`terms` returns its three weighted terms
    ``{"sim", "var", "cov"}``, which add up to it (``var`` averaged over the two branches, ``cov``
    summed over them).

    Example::

        loss_fn = VICRegLoss()
        x, y = torch.randn(256, 128), torch.randn(256, 128)
        terms = loss_fn.terms(x, y)          # {"sim": 25 * mse, "var": 25 * hinge, "cov": 1 * cov}
        assert torch.isclose(sum(terms.values()), loss_fn(x, y))
    """

    def __init__(self, sim_weight: float = 25.0, var_weight: float = 25.0, cov_weight: float = 1.0, eps: float = 1e-4):
        super().__init__()
        self.sim_weight = sim_weight
        self.var_weight = var_weight
        self.cov_weight = cov_weight
        self.eps = eps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sum(self.terms(x, y).values())

    def terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted terms ``{"sim", "var", "cov"}`` (float32 scalars that add up to the loss)."""
        if x.shape != y.shape or x.ndim != 2:
            raise ValueError(
                f"VICRegLoss expects two B x D tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        with torch.autocast(x.device.type, enabled=False):
            both = gather_with_grad(torch.stack([x.float(), y.float()], dim=1))  # B_global x 2 x D
            x, y = both[:, 0], both[:, 1]
            sim = F.mse_loss(x, y)
            var = 0.5 * (_variance(x, self.eps) + _variance(y, self.eps))
            cov = _covariance(x) + _covariance(y)
        return {"sim": self.sim_weight * sim, "var": self.var_weight * var, "cov": self.cov_weight * cov}

    def extra_repr(self) -> str:
        return (f"sim_weight={self.sim_weight}, var_weight={self.var_weight}, "
                f"cov_weight={self.cov_weight}, eps={self.eps}")
