"""SIGReg and LeJEPA: push embeddings towards an isotropic Gaussian with a sliced Epps-Pulley test."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..distributed import broadcast, global_batch_mean, is_distributed


def epps_pulley_quadrature(
    t_max: float = 3.0, num_points: int = 17, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nodes ``t`` (``num_points`` on ``[0, t_max]``), ``phi(t) = exp(-t^2/2)`` and the weights.

    The weights are the trapezoid weights on ``[0, t_max]``, doubled (the integrand is even in t),
    times the Gaussian window ``exp(-t^2/2)``: ``dt`` at both ends, ``2 dt`` inside. This is exactly
    the trapezoid rule on the symmetric grid of ``2 * num_points - 1`` nodes over
    ``[-t_max, t_max]``.
    """
    if num_points < 2:
        raise ValueError(f"num_points={num_points} is invalid: use at least 2 quadrature points")
    if t_max <= 0:
        raise ValueError(f"t_max={t_max} is invalid: use a positive number")
    t = torch.linspace(0.0, t_max, num_points, dtype=torch.float32, device=device)
    dt = t_max / (num_points - 1)
    weights = torch.full((num_points,), 2.0 * dt, dtype=torch.float32, device=device)
    weights[0] = weights[-1] = dt
    phi = torch.exp(-0.5 * t.square())
    return t, phi, weights * phi


def epps_pulley(x: torch.Tensor, t_max: float = 3.0, num_points: int = 17) -> torch.Tensor:
    r"""Epps-Pulley statistic of each column of ``x`` against the standard normal N(0, 1).

    For one 1-D sample :math:`x_1 \dots x_N` with empirical characteristic function
    :math:`\hat\varphi(t) = \frac1N \sum_n e^{i t x_n}`:

    .. math::

        T = N \int_{-t_{max}}^{t_{max}} \big|\hat\varphi(t) - e^{-t^2/2}\big|^2 e^{-t^2/2}\, dt
          = 2N \int_0^{t_{max}} \Big[\big(\overline{\cos(t x)} - e^{-t^2/2}\big)^2
            + \overline{\sin(t x)}^2\Big] e^{-t^2/2}\, dt

    computed as in the official LeJEPA code: trapezoid rule on ``num_points`` nodes of
    ``[0, t_max]``, weights doubled by symmetry (:func:`epps_pulley_quadrature`). For an exact
    N(0, 1) sample :math:`E[T] = \int (1 - e^{-t^2}) e^{-t^2/2} dt \approx 1.05` (t_max = 3); a
    collapsed (constant) sample gives :math:`T \propto N` (hundreds to thousands).

    Args:
        x: ``N x M`` -- N samples of M one-dimensional projections (leading batch dims allowed:
           ``... x N x M``; the samples are along dim -2).
        t_max, num_points: integration range and number of nodes (defaults 3.0 and 17, official).

    Returns: ``M`` statistics (float32; ``... x M`` with leading dims).

    Distributed: the means over samples are averaged over the batch concatenated across ranks and
    ``N`` is the global number of samples, so every rank gets the single-process statistic of the
    global batch.
    """
    if x.ndim < 2:
        raise ValueError(f"epps_pulley expects N x M samples, got shape {tuple(x.shape)}")
    with torch.autocast(x.device.type, enabled=False):
        x = x.float()
        t, phi, weights = epps_pulley_quadrature(t_max, num_points, x.device)
        xt = x.unsqueeze(-1) * t  # ... x N x M x T
        trig = torch.stack([torch.cos(xt), torch.sin(xt)]).movedim(-3, 0)  # N x 2 x ... x M x T
        means, n = global_batch_mean(trig)  # 2 x ... x M x T
        err = (means[0] - phi).square() + means[1].square()
        return (err @ weights) * n


def random_directions(
    dim: int, num_directions: int, device: torch.device | str | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``dim x num_directions`` unit columns, uniform on the sphere (normalised Gaussian draws).

    With ``generator`` the draw happens on the generator's device and is moved to ``device``; pass
    a generator seeded identically on every rank (e.g. from the global step). Without one, the
    global RNG is used and, under DDP, rank 0's draw is broadcast so that all ranks agree.
    """
    if generator is not None:
        a = torch.randn(dim, num_directions, generator=generator, device=generator.device, dtype=torch.float32)
        a = a.to(device)
    else:
        a = torch.randn(dim, num_directions, device=device, dtype=torch.float32)
        if is_distributed():
            a = broadcast(a, src=0)
    return a / a.norm(dim=0, keepdim=True)


class SIGReg(nn.Module):
    r"""Sketched Isotropic Gaussian Regularisation: Epps-Pulley averaged over random 1-D projections.

    .. math::

        \mathrm{SIGReg}(Z) = \frac1M \sum_{m=1}^{M} T\big(Z a_m\big),\qquad a_m \sim \mathrm{Unif}(S^{D-1})

    with :math:`T` the Epps-Pulley statistic (:func:`epps_pulley`). By the Cramér-Wold theorem
    all 1-D marginals match N(0, 1) iff Z ~ N(0, I); the directions are redrawn at every call (the
    official code seeds a generator with the global step), the same on every rank.

    Reference: Balestriero & LeCun, "LeJEPA: Provable and Scalable Self-Supervised Learning Without
    the Heuristics", 2025. Defaults: ``num_directions = 256`` (256-1024), ``t_max = 3``, 17 nodes.

    ``forward(z, generator=None)``: ``z`` is ``N x D`` (or ``... x N x D``: the same directions for
    every leading index, statistics averaged over them too). Returns a float32 scalar: about 1.05
    for a standard normal sample, hundreds or more under collapse.
    """

    def __init__(self, num_directions: int = 256, t_max: float = 3.0, num_points: int = 17):
        super().__init__()
        if num_directions < 1:
            raise ValueError(f"num_directions={num_directions} is invalid: use a positive integer")
        self.num_directions = num_directions
        self.t_max = t_max
        self.num_points = num_points

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.autocast(z.device.type, enabled=False):
            z = z.float()
            a = random_directions(z.shape[-1], self.num_directions, z.device, generator)
            return epps_pulley(z @ a, self.t_max, self.num_points).mean()

    def extra_repr(self) -> str:
        return f"num_directions={self.num_directions}, t_max={self.t_max}, num_points={self.num_points}"


class LeJEPALoss(nn.Module):
    r"""LeJEPA: view invariance plus SIGReg, no teacher, no stop-gradient.

    For V views :math:`z_v` (``N x D`` embeddings of V augmentations of the same N images), the
    first :math:`G` of them global crops, and the centre :math:`\bar z`:

    .. math::

        \mathcal{L} = \lambda \frac1V \sum_v \mathrm{SIGReg}(z_v)
            + (1 - \lambda) \frac{1}{V N} \sum_{v, n} \frac1D \big\|\bar z_n - z_{v,n}\big\|^2

    ``center="global"`` (the paper's form, the default): :math:`\bar z = \frac1G \sum_{v \le G} z_v`,
    the mean of the *global* views' embeddings, which every view (global and local) is pulled
    towards. ``center="all"``: the mean over all V views, local crops included (a variant).
    With only global views the two are the same.

    The invariance term is a mean over views, samples **and feature dimensions**
    (``invariance_reduction="mean"``), the scale the published :math:`\lambda` values were tuned
    for; ``"sum"`` uses the squared Euclidean norm instead (D times larger). SIGReg uses the same
    random directions for every view within a call.

    Reference: Balestriero & LeCun, "LeJEPA: Provable and Scalable Self-Supervised Learning Without
    the Heuristics", 2025. Defaults: ``lam = 0.05`` (0.02-0.05), ``num_directions = 256``.

    ``forward(views, generator=None, *, num_global=None)`` returns the float32 scalar (``num_global``:
    how many of ``views`` come first as global crops; None: all of them); :meth:`terms` returns the
    weighted terms ``{"sigreg", "invariance"}`` that add up to it. Distributed: every term is a
    global-batch quantity (see :mod:`workbench.distributed`).

    Example::

        loss_fn = LeJEPALoss(lam=0.05)
        views = [torch.randn(64, 32) for _ in range(6)]          # 2 global crops, then 4 local crops
        terms = loss_fn.terms(views, num_global=2)                # {"sigreg": 0.05 * S, "invariance": 0.95 * I}
    """

    def __init__(
        self,
        lam: float = 0.05,
        num_directions: int = 256,
        t_max: float = 3.0,
        num_points: int = 17,
        invariance_reduction: str = "mean",
        center: str = "global",
    ):
        super().__init__()
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam={lam} is invalid: use a number in [0, 1]")
        if invariance_reduction not in ("mean", "sum"):
            raise ValueError(f"invariance_reduction={invariance_reduction!r} is invalid: use 'mean' or 'sum'")
        if center not in ("global", "all"):
            raise ValueError(f"center={center!r} is invalid: use 'global' (the paper) or 'all'")
        self.lam = lam
        self.invariance_reduction = invariance_reduction
        self.center = center
        self.sigreg = SIGReg(num_directions, t_max, num_points)

    def forward(self, views: Sequence[torch.Tensor], generator: torch.Generator | None = None, *,
                num_global: int | None = None) -> torch.Tensor:
        return sum(self.terms(views, generator, num_global=num_global).values())

    def terms(self, views: Sequence[torch.Tensor], generator: torch.Generator | None = None, *,
              num_global: int | None = None) -> dict[str, torch.Tensor]:
        """The weighted terms ``{"sigreg": lam * S, "invariance": (1 - lam) * I}`` (float32 scalars)."""
        if len(views) < 1:
            raise ValueError("LeJEPALoss needs at least one view")
        num_global = len(views) if num_global is None else int(num_global)
        if not 1 <= num_global <= len(views):
            raise ValueError(f"num_global={num_global} is invalid: between 1 and the number of views ({len(views)})")
        with torch.autocast(views[0].device.type, enabled=False):
            z = torch.stack([v.float() for v in views])  # V x N x D
            sigreg = self.sigreg(z, generator)
            centre = z[:num_global].mean(dim=0, keepdim=True) if self.center == "global" else z.mean(dim=0, keepdim=True)
            sq = (centre - z).square()  # V x N x D
            per_sample = sq.mean(dim=(0, 2)) if self.invariance_reduction == "mean" else sq.sum(dim=2).mean(dim=0)
            invariance, _ = global_batch_mean(per_sample)
        return {"sigreg": self.lam * sigreg, "invariance": (1.0 - self.lam) * invariance}

    def extra_repr(self) -> str:
        return f"lam={self.lam}, invariance_reduction={self.invariance_reduction!r}, center={self.center!r}"


__all__ = ["LeJEPALoss", "SIGReg", "epps_pulley", "epps_pulley_quadrature", "random_directions"]
