"""Latent prediction: a predictor's tokens regress an EMA teacher's (I-JEPA, data2vec).

The targets are the teacher's tokens, normalised as each paper does; the loss is a smooth L1
between prediction and target at the predicted positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import global_batch_mean


def layer_normalised(tokens: torch.Tensor) -> torch.Tensor:
    """I-JEPA's targets: layer norm over the feature dimension, no affine parameters (float32)."""
    tokens = tokens.float()
    return F.layer_norm(tokens, tokens.shape[-1:])


def top_k_average(layers: Sequence[torch.Tensor]) -> torch.Tensor:
    """data2vec's targets: each of the top-K layers' ``B x T x D`` tokens instance-normalised over
    the tokens, averaged over the layers, then layer-normalised (float32)."""
    stack = [F.instance_norm(t.float().transpose(1, 2)).transpose(1, 2) for t in layers]
    return layer_normalised(torch.stack(stack).mean(0))


class LatentPredictionLoss(nn.Module):
    r"""Smooth L1 between predicted and target tokens (no gradient into the targets).

    .. math::

        \mathcal{L} = \frac{1}{B Q D} \sum_{b, q, d} \ell_\beta\big(\hat z_{bqd} - \mathrm{sg}(z_{bqd})\big),\qquad
        \ell_\beta(u) = \begin{cases} u^2 / (2\beta) & |u| < \beta \\ |u| - \beta / 2 & \text{else} \end{cases}

    with :math:`\beta = 1` (``F.smooth_l1_loss``'s default and the official I-JEPA code's loss).

    References: I-JEPA (Assran et al., "Self-Supervised Learning from Images with a
    Joint-Embedding Predictive Architecture", CVPR 2023): targets are the EMA encoder's
    layer-normalised output tokens at the target blocks (:func:`layer_normalised`). data2vec
    (Baevski et al. 2022): targets are the average of the top-K teacher layers
    (:func:`top_k_average`; K = 6 in v1).

    ``forward(pred, target)``: ``pred`` and ``target`` of one shape (``... x D``). Returns the
    float32 scalar (the mean over the batch concatenated across ranks).

    Example::

        loss_fn = LatentPredictionLoss()
        target = layer_normalised(torch.randn(8, 16, 64))        # teacher tokens at 16 hidden patches
        loss = loss_fn(torch.zeros(8, 16, 64), target)           # about 0.5 * E[z^2] = 0.5 for |z| < 1 mostly
    """

    def __init__(self, beta: float = 1.0):
        super().__init__()
        if beta <= 0:
            raise ValueError(f"beta={beta} is invalid: use a positive number")
        self.beta = beta

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"pred has shape {tuple(pred.shape)}, the target {tuple(target.shape)}")
        with torch.autocast(pred.device.type, enabled=False):
            per = F.smooth_l1_loss(pred.float(), target.detach().float(), beta=self.beta, reduction="none")
            return global_batch_mean(per.reshape(per.shape[0], -1).mean(dim=1))[0]

    def extra_repr(self) -> str:
        return f"beta={self.beta}"
