"""Seeded per-sample randomness on the tensors' device, and the argument checks views and masks share.

:mod:`workbench.views` (augmentations) and :mod:`workbench.masks` (token masks) draw every random
number through :func:`uniform` from a ``torch.Generator`` made by :func:`make_generator` on the
device the images live on, so a step never waits for the host.
"""

from __future__ import annotations

import math

import torch

__all__ = ["make_generator", "resolve_device", "uniform", "check_prob", "check_interval"]


def make_generator(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    """A seeded generator on ``device`` (default CPU); pass it to the functions of
    :mod:`workbench.views` and :mod:`workbench.masks`.

    A CUDA tensor can only be drawn from a CUDA generator, so the generator must live where the
    images are.
    """
    generator = torch.Generator(device=torch.device(device) if device is not None else "cpu")
    generator.manual_seed(int(seed))
    return generator


def resolve_device(device, generator: torch.Generator | None) -> torch.device:
    """The device to draw on: the one given, else the generator's, else CPU.

    ValueError when the generator lives on another kind of device than the one given.
    """
    if device is None:
        return generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"the generator is on {generator.device} but the tensors are on {device}; "
            f"create it with make_generator(seed, {str(device)!r})"
        )
    return device


def uniform(shape, generator: torch.Generator | None, device=None) -> torch.Tensor:
    """Uniform [0, 1) float32 numbers of ``shape`` on ``device`` (see :func:`resolve_device`).

    Always float32, whatever the images' dtype: probabilities and box coordinates stay exact.
    """
    return torch.rand(shape, generator=generator, device=resolve_device(device, generator), dtype=torch.float32)


def check_prob(p: float, name: str) -> float:
    """``p`` as a float; ValueError naming ``name`` unless it lies in [0, 1]."""
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name}={p!r} is invalid: a probability must lie in [0, 1]")
    return float(p)


def check_interval(value, name: str, low: float = 0.0, high: float = math.inf,
                   open_low: bool = True) -> tuple[float, float]:
    """A ``(min, max)`` pair of floats with ``low < min <= max <= high`` (``low`` itself allowed
    when not ``open_low``); ValueError naming ``name`` otherwise."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is invalid: expected a pair (min, max)") from None
    below = lo <= low if open_low else lo < low
    if below or hi > high or lo > hi:
        bound = "(" if open_low else "["
        raise ValueError(f"{name}={value!r} is invalid: need min <= max within {bound}{low}, {high}]")
    return lo, hi
