"""A symmetric-KL consistency loss between two views: the toy that collapses
(docs/concepts.md, "Losses")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import global_batch_mean


class KLConsistencyLoss(nn.Module):
    r"""Symmetric KL divergence between the softmax outputs of two views of the same images.

    Both views go through one shared encoder; there is no stop-gradient, no teacher and no
    anti-collapse term:

    .. math::

        p_a = \operatorname{softmax}(a / \tau),\quad p_b = \operatorname{softmax}(b / \tau),\qquad
        \mathcal{L} = \frac{1}{B} \sum_b \tfrac12 \big(\mathrm{KL}(p_{a,b} \,\|\, p_{b,b})
            + \mathrm{KL}(p_{b,b} \,\|\, p_{a,b})\big)

    **It is expected to collapse**: an encoder that outputs the same logits for every input makes
    the loss exactly 0, its global minimum. It exists to demonstrate that failure (and what the
    anti-collapse mechanisms of DINO, VICReg, SIGReg, ... prevent), not to learn representations.

    Args:
        temperature: :math:`\tau` (default 1.0).

    ``forward(a, b)`` takes two ``B x K`` logit tensors and returns the scalar loss (float32; the
    mean over the batch concatenated across ranks under DDP). :meth:`forward_parts` returns
    ``(loss, {"kl_ab", "kl_ba"})`` (the two directions, batch means).
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} is invalid: use a positive number")
        self.temperature = temperature

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.forward_parts(a, b)[0]

    def forward_parts(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if a.shape != b.shape:
            raise ValueError(f"the two views' logits differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        with torch.autocast(a.device.type, enabled=False):
            log_pa = F.log_softmax(a.float() / self.temperature, dim=-1)
            log_pb = F.log_softmax(b.float() / self.temperature, dim=-1)
            kl_ab = (log_pa.exp() * (log_pa - log_pb)).sum(dim=-1)
            kl_ba = (log_pb.exp() * (log_pb - log_pa)).sum(dim=-1)
            means, _ = global_batch_mean(torch.stack([kl_ab, kl_ba], dim=1))
            loss = 0.5 * (means[0] + means[1])
        return loss, {"kl_ab": means[0], "kl_ba": means[1]}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
