"""Barlow Twins: make the cross-correlation of two views' embeddings the identity."""

from __future__ import annotations

import torch
from torch import nn

from ..distributed import all_reduce_sum, global_batch_mean


class BarlowTwinsLoss(nn.Module):
    r"""Barlow Twins redundancy-reduction loss between two branches (``B x D`` projector outputs).

    Each branch is batch-normalised without affine parameters, exactly as ``nn.BatchNorm1d(D,
    affine=False)`` in training mode (batch mean, **biased** batch variance, ``eps = 1e-5`` inside
    the square root):

    .. math::

        \hat z = \frac{z - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}},\qquad
        c = \frac1B \hat z_1^\top \hat z_2 \quad (D \times D),\qquad
        \mathcal{L} = \sum_i (1 - c_{ii})^2 + \lambda \sum_{i \ne j} c_{ij}^2

    Reference: Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy Reduction",
    ICML 2021. Default ``lambd = 0.0051`` (paper); the paper uses a large projector (8192) and, on
    ViTs, AdamW.

    Distributed: the batch-norm statistics and the cross-correlation are all-reduced (with
    gradient) and ``B`` is the global batch, as with the official ``SyncBatchNorm`` +
    ``all_reduce(c)``; every rank returns the single-process value of the concatenated batch.
    (The official code's plain ``all_reduce`` leaves gradients 1/W of the single-process ones after
    DDP's averaging; here they match -- see :mod:`workbench.distributed`.)

    ``forward(z1, z2)`` returns the float32 scalar; :meth:`forward_parts` returns
    ``(loss, {"on_diag", "off_diag"})``: :math:`\sum_i (1 - c_{ii})^2` and the unweighted
    :math:`\sum_{i\ne j} c_{ij}^2`. :meth:`cross_correlation` returns ``c``.
    """

    def __init__(self, lambd: float = 0.0051, eps: float = 1e-5):
        super().__init__()
        self.lambd = lambd
        self.eps = eps

    def cross_correlation(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """The ``D x D`` matrix ``c`` (float32, global batch)."""
        if z1.shape != z2.shape or z1.ndim != 2:
            raise ValueError(
                f"BarlowTwinsLoss expects two B x D tensors of one shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
            )
        with torch.autocast(z1.device.type, enabled=False):
            z = torch.stack([z1.float(), z2.float()], dim=1)  # B x 2 x D
            mean, n = global_batch_mean(z)
            centred = z - mean
            var, _ = global_batch_mean(centred.square())  # biased, two-pass for accuracy
            zn = centred / torch.sqrt(var + self.eps)
            return all_reduce_sum(zn[:, 0].T @ zn[:, 1]) / n

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return self.forward_parts(z1, z2)[0]

    def forward_parts(self, z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.autocast(z1.device.type, enabled=False):
            c = self.cross_correlation(z1, z2)
            diag = torch.diagonal(c)
            on_diag = (1.0 - diag).square().sum()
            off_diag = (c - torch.diag_embed(diag)).square().sum()
            loss = on_diag + self.lambd * off_diag
        return loss, {"on_diag": on_diag, "off_diag": off_diag}

    def extra_repr(self) -> str:
        return f"lambd={self.lambd}, eps={self.eps}"
