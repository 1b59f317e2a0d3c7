"""Spawned worker processes for the two-rank gloo tests: a free port and a join with a deadline."""

from __future__ import annotations

import socket
import time
from typing import Callable

import pytest
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a gloo rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_spawned(worker: Callable, args: tuple, nprocs: int, deadline: float, what: str) -> None:
    """Run ``worker(rank, *args)`` in ``nprocs`` spawned processes; a worker's exception fails the
    test (re-raised by ``join``), and so does not finishing within ``deadline`` seconds -- a guard
    against a deadlock, never a hang of the suite."""
    context = mp.start_processes(worker, args=args, nprocs=nprocs, join=False, start_method="spawn")
    end = time.monotonic() + deadline
    try:
        while not context.join(timeout=max(0.1, end - time.monotonic())):
            if time.monotonic() > end:
                pytest.fail(f"{what} did not finish within {deadline:.0f} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join(5)
