"""Range checks for objective parameters.

An objective checks its parameters when it is built, and :func:`workbench.validation.validate_config`
builds every objective once before a run starts, so a bad value (a zero temperature, a negative
loss coefficient, a projector of width 0) fails before anything is written, with a
:class:`~workbench.errors.ConfigError` naming ``objectives.<name>.params.<param>``, the value and
what is allowed -- instead of a ``ZeroDivisionError`` or a NaN loss many steps later.

>>> positive_int("dino", {"out_dim": 0}, "out_dim")
Traceback (most recent call last):
...
workbench.errors.ConfigError: objectives.dino.params.out_dim=0 is invalid: an integer >= 1
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

from ..errors import ConfigError, check_one_of
from ..schedules import check_range


def field_name(objective: str, param: str) -> str:
    """The dotted config path of one objective parameter."""
    return f"objectives.{objective}.params.{param}"


def positive_int(objective: str, params: dict[str, Any], param: str, minimum: int = 1,
                 optional: bool = False) -> int | None:
    """``params[param]`` as an int ``>= minimum`` (``None`` passes when ``optional``)."""
    value = params[param]
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or null (the default)" if optional else "")
        raise ConfigError(field_name(objective, param), value, allowed)
    return int(value)


def number(objective: str, params: dict[str, Any], param: str, ok: Callable[[float], bool], allowed: str) -> Any:
    """Check a numeric parameter, or every value a schedule of it moves between, with ``ok``.

    Returns the value unchanged (a number, or the schedule spec of a schedulable parameter; the
    base class has already refused schedules for the others). Text, infinities and NaN always
    fail: ``allowed`` should describe the finite range.
    """
    value, field = params[param], field_name(objective, param)
    if isinstance(value, dict):
        check_range(value, field, lambda x: math.isfinite(x) and ok(x), allowed)
    elif isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or not ok(value):
        raise ConfigError(field, value, allowed)
    return value


def positive(objective: str, params: dict[str, Any], param: str, what: str = "a number") -> Any:
    """A strictly positive finite number (temperatures: dividing by 0 or flipping the sign breaks the loss)."""
    return number(objective, params, param, lambda x: x > 0, f"{what} > 0")


def non_negative(objective: str, params: dict[str, Any], param: str, what: str = "a number") -> Any:
    """A finite number >= 0 (loss coefficients: a negative one rewards what the term penalises)."""
    return number(objective, params, param, lambda x: x >= 0, f"{what} >= 0")


def predictor(objective: str, params: dict[str, Any], width: str, depth: str, heads: int = 4) -> None:
    """A small transformer predictor / decoder: ``depth`` blocks (>= 0) of ``width`` channels split
    into ``heads`` attention heads, so the width must be a positive multiple of ``heads``."""
    positive_int(objective, params, depth, minimum=0)
    value = params[width]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < heads or value % heads:
        raise ConfigError(field_name(objective, width), value, f"a positive multiple of {heads} (the predictor's "
                                                               f"{heads} attention heads)")


def choice(objective: str, params: dict[str, Any], param: str, choices: tuple[Any, ...],
           allowed: str | None = None) -> Any:
    """One of ``choices`` (``allowed``: how to say them, when a plain list of them does not read well)."""
    value = params[param]
    if allowed is None:
        check_one_of(field_name(objective, param), value, choices)
    elif value not in choices:
        raise ConfigError(field_name(objective, param), value, allowed)
    return value


def pool(objective: str, params: dict[str, Any], param: str = "pool") -> str | None:
    """A pooling of the layer's tokens: ``cls``, ``mean`` or null (the model's ``model.pool``)."""
    return choice(objective, params, param, (None, "cls", "mean"), "'cls', 'mean' or null (use model.pool)")


__all__ = ["choice", "field_name", "non_negative", "number", "pool", "positive", "positive_int", "predictor"]
