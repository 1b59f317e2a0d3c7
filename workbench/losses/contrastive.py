"""SimCLR's NT-Xent contrastive loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import gather_sizes, gather_with_grad, global_batch_mean, rank


class NTXentLoss(nn.Module):
    r"""Normalised temperature-scaled cross-entropy (SimCLR), symmetric over the two views.

    The 2B projections :math:`z_1 \dots z_{2B}` (both views of B images) are l2-normalised and
    compared by cosine similarity :math:`s_{ik} = z_i^\top z_k`. For every anchor :math:`i` with
    positive :math:`j` (the other view of the same image):

    .. math::

        \ell_i = -\log \frac{\exp(s_{ij}/\tau)}{\sum_{k \ne i} \exp(s_{ik}/\tau)},\qquad
        \mathcal{L} = \frac{1}{2B} \sum_{i=1}^{2B} \ell_i

    (both directions: each view is the anchor once; the 2B - 2 other samples are negatives).

    Reference: Chen et al., "A Simple Framework for Contrastive Learning of Visual
    Representations", ICML 2020. Temperature: 0.1 with large batches, 0.5 common on small data
    (default here 0.5).

    Distributed: the negatives (keys) are gathered from every rank with gradient; each rank scores
    its own anchors against the global 2B keys and the mean is taken over all anchors of all ranks,
    so every rank returns the single-process loss of the concatenated batch.

    ``forward(z1, z2)`` (two ``B x K`` tensors, row b of each = the same image) returns the float32
    scalar; :meth:`forward_parts` returns ``(loss, {"positive_similarity", "top1"})`` (detached):
    mean cosine of positive pairs and the fraction of anchors whose positive is their most similar
    key.
    """

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} is invalid: use a positive number")
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return self.forward_parts(z1, z2)[0]

    def forward_parts(self, z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if z1.shape != z2.shape or z1.ndim != 2:
            raise ValueError(
                f"NTXentLoss expects two B x K tensors of one shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
            )
        with torch.autocast(z1.device.type, enabled=False):
            b = z1.shape[0]
            a1 = F.normalize(z1.float(), dim=-1)
            a2 = F.normalize(z2.float(), dim=-1)
            sizes = gather_sizes(b, z1.device)
            keys = gather_with_grad(torch.stack([a1, a2], dim=1), sizes)  # B_global x 2 x K
            b_global = keys.shape[0]
            keys = torch.cat([keys[:, 0], keys[:, 1]])  # 2 B_global x K: view 1 block, then view 2
            anchors = torch.cat([a1, a2])  # 2B x K
            logits = anchors @ keys.T / self.temperature  # 2B x 2 B_global

            own = torch.arange(b, device=z1.device) + sum(sizes[: rank()])
            self_index = torch.cat([own, own + b_global])
            positive = torch.cat([own + b_global, own])
            rows = torch.arange(2 * b, device=z1.device)
            is_self = torch.zeros_like(logits, dtype=torch.bool)
            is_self[rows, self_index] = True
            logits = logits.masked_fill(is_self, float("-inf"))

            per_anchor = F.cross_entropy(logits, positive, reduction="none")
            with torch.no_grad():
                pos_sim = logits[rows, positive] * self.temperature
                top1 = (logits.argmax(dim=1) == positive).float()
            means, _ = global_batch_mean(torch.stack([per_anchor, pos_sim, top1], dim=1))
        return means[0], {"positive_similarity": means[1].detach(), "top1": means[2].detach()}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
