"""How many torch ops a call dispatches: an exact, machine-independent measure of vectorisation."""

from __future__ import annotations

from typing import Callable

from torch.utils._python_dispatch import TorchDispatchMode


class _CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def dispatched_ops(call: Callable[[], object]) -> int:
    """The number of torch ops ``call()`` dispatches (every aten op, on any device)."""
    with _CountOps() as counter:
        call()
    return counter.count
