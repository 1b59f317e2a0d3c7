"""The exponential-moving-average teacher, shared by every objective that needs one.

DINO, I-JEPA and the latent ladder all read an EMA copy of the backbone. Keeping one copy (not one
per objective) means one teacher forward per view per step, whatever the number of objectives.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMATeacher(nn.Module):
    """An EMA copy of ``student``: ``t <- m * t + (1 - m) * s`` after every optimisation step.

    The teacher never receives gradients and always runs in eval mode (no drop-path), so its
    outputs are a smoothed, deterministic target.
    """

    def __init__(self, student: nn.Module):
        super().__init__()
        self.model = copy.deepcopy(student)
        self.model.requires_grad_(False)
        self.model.eval()

    def train(self, mode: bool = True) -> "EMATeacher":
        super().train(mode)
        self.model.eval()  # Lightning toggles train() on the whole module; the teacher stays in eval
        return self

    def update(self, student: nn.Module, momentum: float) -> None:
        ema_update_(self.model, student, momentum)

    @torch.no_grad()
    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)


@torch.no_grad()
def ema_update_(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """In-place EMA of ``teacher``'s parameters towards ``student``'s (for objective heads)."""
    t = list(teacher.parameters())
    torch._foreach_mul_(t, momentum)
    torch._foreach_add_(t, [p.detach() for p in student.parameters()], alpha=1.0 - momentum)
