"""Schedules for numeric hyper-parameters over training.

Each schedule is a plain function of the optimisation step, so it is cheap, stateless and exact
after a resume.
"""

from __future__ import annotations

import math


def warmup_cosine(step: int, total: int, warmup: int = 0, start: float = 1.0, end: float = 0.0) -> float:
    """Linear ramp from 0 to ``start`` over ``warmup`` steps, then cosine from ``start`` to ``end``.

    At ``step = warmup`` the value is ``start``; at ``step >= total`` it is ``end``. Used as the
    learning-rate multiplier (``start=1``, ``end=min_lr_ratio``).
    """
    if warmup > 0 and step < warmup:
        return start * (step + 1) / warmup
    if step >= total:
        return end
    progress = (step - warmup) / max(1, total - warmup)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * progress))
