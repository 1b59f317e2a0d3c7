"""The optimiser every training loop of the workbench uses: AdamW with two parameter groups and a
warm-up + cosine learning-rate schedule (the DINO / MAE / timm recipe).

Weight decay pulls weights towards 0; on a bias, a norm's gain or a learned token or position
embedding that is a bias-like offset, not a capacity control, so those get none (parameters with
fewer than two dimensions, and the names the backbone lists in ``no_weight_decay()``). Fused AdamW
(one kernel for all parameters) on CUDA only.
"""

from __future__ import annotations

from functools import partial
from typing import Iterable

import torch

from ..schedules import warmup_cosine


def build_optimiser(optim_config, named_parameters: Iterable[tuple[str, torch.nn.Parameter]],
                    no_weight_decay: set[str], total_steps: int, device: torch.device):
    """``(AdamW, LambdaLR)`` for the trainable parameters of ``named_parameters``.

    optim_config: ``RunConfig.optim`` (``lr``, ``betas``, ``weight_decay``, ``warmup_fraction``,
    ``min_lr_ratio``). no_weight_decay: full parameter names kept out of weight decay besides every
    parameter with fewer than two dimensions. The scheduler is stepped once per optimisation step:
    the learning rate rises linearly over the first ``warmup_fraction * total_steps`` steps, then
    falls on a cosine to ``min_lr_ratio * lr`` at ``total_steps``.
    """
    o = optim_config
    decay, no_decay = [], []
    for name, p in named_parameters:
        if p.requires_grad:
            (no_decay if p.ndim < 2 or name in no_weight_decay else decay).append(p)
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=o.lr, betas=tuple(o.betas), fused=torch.device(device).type == "cuda",
    )
    total = max(1, int(total_steps))
    schedule = partial(warmup_cosine, total=total, warmup=int(o.warmup_fraction * total), start=1.0,
                       end=o.min_lr_ratio)
    return optimiser, torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
