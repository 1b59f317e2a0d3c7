"""DINO: self-distillation with a centred, sharpened teacher."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import global_batch_mean


class DINOLoss(nn.Module):
    r"""Cross-entropy between a centred, sharpened teacher and the student, over view pairs.

    For teacher global view :math:`i` and student view :math:`v \ne i` (outputs of the DINO heads,
    ``B x K`` logits):

    .. math::

        P_t^{(i)} = \operatorname{softmax}\big((t_i - c) / \tau_t\big) \quad\text{(no gradient)},\qquad
        \mathcal{L} = \frac{1}{|\mathcal{P}|} \sum_{(i, v) \in \mathcal{P}}
            \frac{1}{B} \sum_{b} -\sum_k P_{t,bk}^{(i)} \log \operatorname{softmax}(s_v / \tau_s)_{bk}

    where :math:`\mathcal{P}` holds every pair with :math:`v \ne i` (student view ``i`` is the same
    global crop as teacher view ``i``, so global views come first in ``student``). After the loss the
    centre moves towards the teacher mean (no gradient):

    .. math:: c \leftarrow m\, c + (1 - m) \frac{1}{n_t B} \sum_{i, b} t_{i, b}

    Reference: Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021.
    Defaults from the paper: ``student_temp = 0.1``, ``center_momentum = 0.9``; the teacher
    temperature is a *schedule* supplied by the caller at every step (0.04 warmed up linearly to
    0.07 over ~30 epochs; above 0.07 training is unstable).

    Distributed: the batch means (loss, metrics and the centre update) run over the batch
    concatenated across ranks, so every rank returns the same value and holds the same centre; the
    gradient follows :mod:`workbench.distributed`'s convention. Computed in float32 with autocast
    disabled. The centre is updated only in training mode (``self.training``), so evaluation passes
    leave it untouched.

    Args:
        out_dim: ``K``, the number of prototypes (head output size).
        student_temp: :math:`\tau_s`.
        center_momentum: :math:`m`.

    ``forward`` returns the scalar loss; :meth:`forward_parts` returns ``(loss, parts)`` with
    detached monitoring metrics (all global means):

    * ``teacher_entropy``: mean entropy :math:`H(P_t)` over teacher views and samples (nats).
      Towards 0: sharpening collapse (one-hot teacher); towards :math:`\log K`: uniform collapse.
    * ``kl``: mean :math:`\mathrm{KL}(P_t \,\|\, P_s)` over the same pairs as the loss
      (= loss - mean teacher entropy over pairs, since cross-entropy = entropy + KL).
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9):
        super().__init__()
        if out_dim < 1:
            raise ValueError(f"out_dim={out_dim} is invalid: use a positive integer")
        self.out_dim = out_dim
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def teacher_probs(self, teacher: Sequence[torch.Tensor], teacher_temp: float) -> list[torch.Tensor]:
        """``softmax((t - c) / teacher_temp)`` per teacher view, float32, detached."""
        center = self.center.float().to(teacher[0].device)
        return [F.softmax((t.detach().float() - center) / teacher_temp, dim=-1) for t in teacher]

    def teacher_entropy(self, teacher: Sequence[torch.Tensor], teacher_temp: float) -> torch.Tensor:
        """Mean entropy (nats) of the teacher probabilities with the *current* centre (global)."""
        with torch.autocast(teacher[0].device.type, enabled=False), torch.no_grad():
            probs = torch.cat(self.teacher_probs(teacher, teacher_temp))
            return global_batch_mean(_entropy(probs))[0]

    def kl(self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], teacher_temp: float) -> torch.Tensor:
        """Mean ``KL(P_t || P_s)`` over the loss's view pairs with the *current* centre (global).

        Does not update the centre (the same number as ``forward_parts(...)[1]["kl"]`` when called
        before it).
        """
        with torch.autocast(teacher[0].device.type, enabled=False), torch.no_grad():
            _, parts = self._compute(student, teacher, teacher_temp)
        return parts["kl"]

    def forward(
        self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], teacher_temp: float
    ) -> torch.Tensor:
        return self.forward_parts(student, teacher, teacher_temp)[0]

    def forward_parts(
        self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], teacher_temp: float
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(loss, {"teacher_entropy", "kl"})``; updates the centre afterwards in training mode."""
        with torch.autocast(teacher[0].device.type, enabled=False):
            loss, parts = self._compute(student, teacher, teacher_temp)
            if self.training:
                self.update_center(teacher)
        return loss, parts

    def _compute(self, student, teacher, teacher_temp):
        if not teacher or not student:
            raise ValueError("DINOLoss needs at least one teacher view and one student view")
        probs = self.teacher_probs(teacher, teacher_temp)
        log_student = [F.log_softmax(s.float() / self.student_temp, dim=-1) for s in student]
        entropies = [_entropy(p) for p in probs]  # per teacher view: B
        per_sample = 0.0
        entropy_over_pairs = 0.0
        pairs = 0
        for i, (p, h) in enumerate(zip(probs, entropies)):
            for v, log_s in enumerate(log_student):
                if v == i:
                    continue
                per_sample = per_sample - (p * log_s).sum(dim=-1)
                entropy_over_pairs = entropy_over_pairs + h
                pairs += 1
        if pairs == 0:
            raise ValueError("DINOLoss has no (teacher, student) pair with different views: pass more student views")
        entropy = torch.stack(entropies, dim=1).mean(dim=1)  # per sample, mean over teacher views
        stats = torch.stack([per_sample / pairs, entropy, entropy_over_pairs / pairs], dim=1)  # B x 3
        means, _ = global_batch_mean(stats)
        loss = means[0]
        parts = {"teacher_entropy": means[1].detach(), "kl": (means[0] - means[2]).detach()}
        return loss, parts

    @torch.no_grad()
    def update_center(self, teacher: Sequence[torch.Tensor]) -> None:
        """``c <- m c + (1 - m) * mean of the teacher outputs`` over views and the global batch."""
        batch_center, _ = global_batch_mean(torch.cat([t.detach().float() for t in teacher]))
        m = self.center_momentum
        batch_center = batch_center.unsqueeze(0).to(device=self.center.device, dtype=self.center.dtype)
        self.center.mul_(m).add_(batch_center, alpha=1.0 - m)

    def extra_repr(self) -> str:
        return f"out_dim={self.out_dim}, student_temp={self.student_temp}, center_momentum={self.center_momentum}"


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy along the last dim, with 0 log 0 = 0."""
    return -(p * torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))).sum(dim=-1)
