"""Schedules (curricula) for numeric hyper-parameters over training.

Any numeric hyper-parameter of an objective -- its ``weight``, or any numeric entry of its
``params`` (mask ratio, noise level, temperatures, EMA momentum, ...) -- may be written in a run's
config either as a plain number (a constant) or as a *schedule spec*: a plain dict with a
``schedule`` key, which round-trips through YAML::

    weight: {schedule: linear, start: 0.0, end: 1.0, warmup: 0.1}
    mask_ratio: {schedule: cosine, start: 0.4, end: 0.75}
    teacher_temp: {schedule: warmup, start: 0.04, end: 0.07, warmup: 0.3}
    lr_like: {schedule: step, values: [1.0, 0.5, 0.25], boundaries: [0.5, 0.8]}
    mask_ratio: {schedule: adaptive, start: 0.3, end: 0.9, step: 0.05, target: 0.5,
                 metric: mae/loss, every: 50, patience: 1}

:func:`build_schedule` turns a number or a spec into a :class:`Schedule`; every invalid spec raises
:class:`~workbench.errors.ConfigError` naming the field, the bad value and what is allowed.

Positions
    ``warmup``, ``until`` and ``boundaries`` are *fractions of training* in [0, 1] by default: the
    position of step ``s`` is ``s / total_steps``, so one spec works whatever the run length. Add
    ``unit: steps`` to give them in optimisation steps instead (non-negative integers), e.g.
    ``{schedule: warmup, start: 0.04, end: 0.07, warmup: 2000, unit: steps}``. ``step`` is the
    optimiser step counted from 0 (Lightning's ``global_step``); a step past ``total_steps`` keeps
    the final value.

The schedules (keys in brackets are optional, with their defaults)
    ``constant``       ``value``.
    ``linear``         ``start``, ``end`` [``warmup: 0``, ``until: 1``, ``unit: fraction``]:
                       ``start`` up to position ``warmup``, a straight line to ``end`` at ``until``,
                       then ``end``. With ``start: 0`` the ``warmup`` part is a classic loss-weight
                       warm-up (the term is off, then fades in).
    ``cosine``         same keys as ``linear``, half-cosine shape
                       ``end + (start - end) * (1 + cos(pi * t)) / 2``.
    ``warmup``         ``start``, ``end``, ``warmup`` [``unit``]: a straight line from ``start`` to
                       ``end`` over the first ``warmup`` of training, then constant ``end``.
    ``warmup_cosine``  ``start``, ``end`` [``warmup: 0``, ``unit``]: ramp from 0 to ``start`` over
                       ``warmup``, then cosine from ``start`` to ``end`` -- exactly
                       :func:`warmup_cosine`, the learning-rate multiplier (warm-up rounded down to
                       whole steps, as the LR scheduler does).
    ``step``           ``values``, ``boundaries`` [``unit``]: ``values[i]`` from ``boundaries[i-1]``
                       (inclusive) to ``boundaries[i]``; ``len(values) == len(boundaries) + 1``,
                       boundaries strictly increasing.
    ``adaptive``       see :class:`Adaptive`.

Time-based schedules are pure functions of the step: cheap, stateless and exact after a resume.
:class:`Adaptive` has state (its current level), saved by :meth:`Schedule.state_dict`.
"""

from __future__ import annotations

import bisect
import math
import numbers
import warnings
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

__all__ = [
    "Adaptive",
    "Constant",
    "Cosine",
    "Linear",
    "Schedule",
    "Step",
    "Warmup",
    "WarmupCosine",
    "build_schedule",
    "check_range",
    "is_schedule_spec",
    "schedule_fields",
    "warmup_cosine",
]

FRACTION, STEPS = "fraction", "steps"
UNITS = (FRACTION, STEPS)


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


# --------------------------------------------------------------------------------------- checks


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _number(x: Any, field: str) -> float:
    if not _is_number(x) or not math.isfinite(float(x)):
        raise ConfigError(field, x, "a finite number (in YAML write 1.0e-3, not 1e-3, which is read as text)")
    return float(x)


def _integer(x: Any, field: str, minimum: int) -> int:
    if isinstance(x, bool) or not isinstance(x, numbers.Integral) or x < minimum:
        raise ConfigError(field, x, f"an integer >= {minimum}")
    return int(x)


def _boolean(x: Any, field: str) -> bool:
    if not isinstance(x, bool):
        raise ConfigError(field, x, "true or false")
    return x


def _unit(x: Any, field: str) -> str:
    if x not in UNITS:
        raise ConfigError(field, x, "'fraction' (positions are fractions of training in [0, 1]) or 'steps'")
    return x


def _position(x: Any, field: str, unit: str) -> float:
    """A point in training: a fraction in [0, 1], or a whole number of steps >= 0."""
    if unit == FRACTION:
        if not _is_number(x) or not 0.0 <= float(x) <= 1.0:
            raise ConfigError(field, x, "a fraction of training in [0, 1] (or set unit: steps to give steps)")
    elif not _is_number(x) or not math.isfinite(float(x)) or float(x) < 0 or not float(x).is_integer():
        raise ConfigError(field, x, "a whole number of steps >= 0 (unit: steps)")
    return float(x)


def _where(step: int, total_steps: int | float, unit: str) -> float:
    """The position of ``step`` in the unit the schedule's positions are written in."""
    if unit == STEPS:
        return float(step)
    if not total_steps > 0:
        raise ValueError(f"total_steps must be positive to place step {step} in training, got {total_steps!r}")
    return step / total_steps


def _progress(x: float, lo: float, hi: float) -> float:
    """0 at or before ``lo``, 1 at or after ``hi``, linear in between."""
    if x >= hi:
        return 1.0
    if x <= lo:
        return 0.0
    return (x - lo) / (hi - lo)


def _mix(start: float, end: float, t: float) -> float:
    # exact at both ends: t = 0 gives start, t = 1 gives end
    return start * (1.0 - t) + end * t


def _plain(x: float) -> int | float:
    """Positions in steps are written back as ints, so a dumped spec reads like a hand-written one."""
    return int(x) if float(x).is_integer() else x


# ------------------------------------------------------------------------------------- schedules


class Schedule:
    """A hyper-parameter's value over training.

    ``value(step, total_steps)`` gives the value at an optimiser step. ``observe`` feeds the latest
    logged metrics (a no-op except for :class:`Adaptive`); ``state_dict`` / ``load_state_dict``
    carry any state across a resume (empty for time-based schedules). ``to_spec`` returns the
    plain-dict spec, with defaults filled in, that :func:`build_schedule` turns back into an
    equal schedule.
    """

    name: str = ""
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    def value(self, step: int, total_steps: int) -> float:
        raise NotImplementedError

    def __call__(self, step: int, total_steps: int) -> float:
        return self.value(step, total_steps)

    def observe(self, step: int, metrics: Mapping[str, float]) -> None:
        """Time-based schedules ignore metrics."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Time-based schedules have no state; anything given is ignored."""

    def to_spec(self) -> dict:
        raise NotImplementedError

    @property
    def stateful(self) -> bool:
        return False

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_spec().items() if k != "schedule")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_spec() == other.to_spec() and self.state_dict() == other.state_dict()

    __hash__ = None  # type: ignore[assignment]


class Constant(Schedule):
    """The same value throughout. A plain number in the config builds one."""

    name, required = "constant", ("value",)

    def __init__(self, value: float, *, field: str = "constant"):
        self._value = _number(value, f"{field}.value")

    def value(self, step: int, total_steps: int) -> float:
        return self._value

    def to_spec(self) -> dict:
        return {"schedule": self.name, "value": self._value}


class Linear(Schedule):
    """``start`` until ``warmup``, a straight line to ``end`` at ``until`` (end of training), then ``end``."""

    name, required, optional = "linear", ("start", "end"), ("warmup", "until", "unit")

    def __init__(
        self,
        start: float,
        end: float,
        warmup: float = 0.0,
        until: float | None = None,
        unit: str = FRACTION,
        *,
        field: str | None = None,
    ):
        field = field or self.name
        self.unit = _unit(unit, f"{field}.unit")
        self.start = _number(start, f"{field}.start")
        self.end = _number(end, f"{field}.end")
        self.warmup = _position(warmup, f"{field}.warmup", self.unit)
        self.until = None if until is None else _position(until, f"{field}.until", self.unit)
        hi = self.until if self.until is not None else (1.0 if self.unit == FRACTION else math.inf)
        if not self.warmup < hi:
            raise ConfigError(f"{field}.warmup", warmup, f"a position before until ({_plain(hi)})")

    def _t(self, step: int, total_steps: int) -> float:
        x = _where(step, total_steps, self.unit)
        if self.until is not None:
            hi = self.until
        else:
            hi = 1.0 if self.unit == FRACTION else float(total_steps)
        return _progress(x, self.warmup, hi)

    def value(self, step: int, total_steps: int) -> float:
        return _mix(self.start, self.end, self._t(step, total_steps))

    def to_spec(self) -> dict:
        spec = {"schedule": self.name, "start": self.start, "end": self.end, "warmup": _plain(self.warmup)}
        if self.until is not None:
            spec["until"] = _plain(self.until)
        spec["unit"] = self.unit
        return spec


class Cosine(Linear):
    """Like :class:`Linear` with a half-cosine shape: flat at both ends, steepest in the middle."""

    name = "cosine"

    def value(self, step: int, total_steps: int) -> float:
        t = self._t(step, total_steps)
        w = 1.0 if t >= 1.0 else 0.5 * (1.0 - math.cos(math.pi * t))
        return _mix(self.start, self.end, w)


def _ramp_spec(s: Warmup | WarmupCosine) -> dict:
    return {"schedule": s.name, "start": s.start, "end": s.end, "warmup": _plain(s.warmup), "unit": s.unit}


class Warmup(Schedule):
    """A straight line from ``start`` to ``end`` over the first ``warmup`` of training, then ``end``."""

    name, required, optional = "warmup", ("start", "end", "warmup"), ("unit",)

    def __init__(self, start: float, end: float, warmup: float, unit: str = FRACTION, *, field: str = "warmup"):
        self.unit = _unit(unit, f"{field}.unit")
        self.start = _number(start, f"{field}.start")
        self.end = _number(end, f"{field}.end")
        self.warmup = _position(warmup, f"{field}.warmup", self.unit)

    def value(self, step: int, total_steps: int) -> float:
        return _mix(self.start, self.end, _progress(_where(step, total_steps, self.unit), 0.0, self.warmup))

    def to_spec(self) -> dict:
        return _ramp_spec(self)


class WarmupCosine(Schedule):
    """Ramp from 0 to ``start`` over ``warmup``, then cosine from ``start`` to ``end``.

    Computed by :func:`warmup_cosine` with the warm-up rounded down to whole steps, so
    ``{schedule: warmup_cosine, start: 1, end: r, warmup: f}`` equals the learning-rate multiplier
    of a run with ``warmup_fraction: f`` and ``min_lr_ratio: r``.
    """

    name, required, optional = "warmup_cosine", ("start", "end"), ("warmup", "unit")

    def __init__(
        self, start: float, end: float, warmup: float = 0.0, unit: str = FRACTION, *, field: str = "warmup_cosine"
    ):
        self.unit = _unit(unit, f"{field}.unit")
        self.start = _number(start, f"{field}.start")
        self.end = _number(end, f"{field}.end")
        self.warmup = _position(warmup, f"{field}.warmup", self.unit)

    def value(self, step: int, total_steps: int) -> float:
        if self.unit == FRACTION:
            _where(step, total_steps, self.unit)  # validates total_steps
            warmup_steps = int(self.warmup * total_steps)
        else:
            warmup_steps = int(self.warmup)
        return float(warmup_cosine(step, total_steps, warmup=warmup_steps, start=self.start, end=self.end))

    def to_spec(self) -> dict:
        return _ramp_spec(self)


class Step(Schedule):
    """Piecewise constant: ``values[i]`` from ``boundaries[i-1]`` (inclusive) up to ``boundaries[i]``."""

    name, required, optional = "step", ("values", "boundaries"), ("unit",)

    def __init__(self, values: list[float], boundaries: list[float], unit: str = FRACTION, *, field: str = "step"):
        self.unit = _unit(unit, f"{field}.unit")
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"{field}.values", values, "a non-empty list of numbers")
        if not isinstance(boundaries, (list, tuple)):
            raise ConfigError(f"{field}.boundaries", boundaries, "a list of positions (may be empty)")
        self.values = [_number(v, f"{field}.values[{i}]") for i, v in enumerate(values)]
        self.boundaries = [_position(b, f"{field}.boundaries[{i}]", self.unit) for i, b in enumerate(boundaries)]
        if len(self.values) != len(self.boundaries) + 1:
            raise ConfigError(
                f"{field}.values",
                list(values),
                f"one more value than boundaries ({len(self.boundaries)} boundaries need "
                f"{len(self.boundaries) + 1} values)",
            )
        for i in range(1, len(self.boundaries)):
            if not self.boundaries[i] > self.boundaries[i - 1]:
                raise ConfigError(f"{field}.boundaries", list(boundaries), "strictly increasing positions")

    def value(self, step: int, total_steps: int) -> float:
        return self.values[bisect.bisect_right(self.boundaries, _where(step, total_steps, self.unit))]

    def to_spec(self) -> dict:
        return {
            "schedule": self.name,
            "values": list(self.values),
            "boundaries": [_plain(b) for b in self.boundaries],
            "unit": self.unit,
        }


class Adaptive(Schedule):
    """A difficulty that rises while a metric stays good: "pass rate never too low".

    The value starts at ``start`` and moves toward ``end`` by ``step`` (never past ``end``; works for
    ``start < end`` and ``start > end``). Checks happen at the first :meth:`observe` at or after each
    multiple of ``every`` steps; a check *passes* when the latest ``metric`` (a name as logged, e.g.
    ``mae/loss``) is below ``target`` (``mode: min``, the default, for losses) or above it
    (``mode: max``, for accuracies). After ``patience`` consecutive passing checks the value moves
    one ``step`` and the count restarts. A failing check resets the count; with ``ease: true`` a
    check that misses by more than ``tolerance`` (relative: above ``target + tolerance * |target|``
    for ``mode: min``) moves the value one ``step`` back toward ``start`` (never past it). A
    non-finite metric fails the check without easing.

    Spec keys: ``start``, ``end``, ``step`` (> 0), ``target``, ``metric``; optional ``every: 100``
    (steps, >= 1), ``patience: 1`` (>= 1), ``ease: false``, ``tolerance: 0.1`` (>= 0),
    ``mode: min``.

    ``observe`` takes plain floats: the caller passes the values it already logged, at logging
    intervals, so no GPU synchronisation happens here. The value is held as an integer level
    (``start + level * step``, clamped to ``end``), so no rounding error accumulates; the level,
    the pass count and the step of the last check are the state saved by :meth:`state_dict`.
    """

    name = "adaptive"
    required = ("start", "end", "step", "target", "metric")
    optional = ("every", "patience", "ease", "tolerance", "mode")

    def __init__(
        self,
        start: float,
        end: float,
        step: float,
        target: float,
        metric: str,
        every: int = 100,
        patience: int = 1,
        ease: bool = False,
        tolerance: float = 0.1,
        mode: str = "min",
        *,
        field: str = "adaptive",
    ):
        self.start = _number(start, f"{field}.start")
        self.end = _number(end, f"{field}.end")
        self.step = _number(step, f"{field}.step")
        if self.step <= 0:
            raise ConfigError(f"{field}.step", step, "a number > 0 (the direction comes from start and end)")
        self.target = _number(target, f"{field}.target")
        if not isinstance(metric, str) or not metric:
            raise ConfigError(f"{field}.metric", metric, "the name of a logged metric, e.g. 'mae/loss'")
        self.metric = metric
        self.every = _integer(every, f"{field}.every", 1)
        self.patience = _integer(patience, f"{field}.patience", 1)
        self.ease = _boolean(ease, f"{field}.ease")
        self.tolerance = _number(tolerance, f"{field}.tolerance")
        if self.tolerance < 0:
            raise ConfigError(f"{field}.tolerance", tolerance, "a number >= 0 (relative to |target|)")
        if mode not in ("min", "max"):
            raise ConfigError(f"{field}.mode", mode, "'min' (pass while the metric is below target) or 'max' (above)")
        self.mode = mode
        self._direction = 1.0 if self.end >= self.start else -1.0
        # number of steps to reach end (the last one may be partial); the epsilon absorbs rounding
        self.max_level = max(0, math.ceil(abs(self.end - self.start) / self.step - 1e-9))
        self.level = 0
        self.counter = 0
        self.last_check = 0
        self._warned_missing = False

    @property
    def stateful(self) -> bool:
        return True

    @property
    def current(self) -> float:
        if self.level >= self.max_level:
            return self.end
        return self.start + self._direction * self.level * self.step

    def value(self, step: int, total_steps: int) -> float:
        return self.current

    def _passes(self, x: float) -> bool:
        return x < self.target if self.mode == "min" else x > self.target

    def _too_hard(self, x: float) -> bool:
        margin = self.tolerance * abs(self.target)
        return x > self.target + margin if self.mode == "min" else x < self.target - margin

    def observe(self, step: int, metrics: Mapping[str, float]) -> None:
        if step // self.every <= self.last_check // self.every:
            return  # no new check is due (also makes repeated calls at one step harmless)
        if self.metric not in metrics:
            if not self._warned_missing:
                self._warned_missing = True
                warnings.warn(
                    f"adaptive schedule: metric {self.metric!r} is not among the observed metrics "
                    f"({', '.join(sorted(metrics)) or 'none'}); the value stays at {self.current} until it is",
                    stacklevel=2,
                )
            return
        x = float(metrics[self.metric])
        self.last_check = int(step)
        if math.isfinite(x) and self._passes(x):
            self.counter += 1
            if self.counter >= self.patience:
                self.counter = 0
                self.level = min(self.level + 1, self.max_level)
            return
        self.counter = 0
        if self.ease and math.isfinite(x) and self._too_hard(x):
            self.level = max(self.level - 1, 0)

    def state_dict(self) -> dict:
        return {"value": self.current, "level": self.level, "counter": self.counter, "last_check": self.last_check}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "level" in state:
            level = int(state["level"])
        else:  # a state with only the value: recover the level from it
            level = round(abs(float(state["value"]) - self.start) / self.step)
        self.level = min(max(level, 0), self.max_level)
        self.counter = int(state.get("counter", 0))
        self.last_check = int(state.get("last_check", 0))

    def to_spec(self) -> dict:
        return {
            "schedule": self.name,
            "start": self.start,
            "end": self.end,
            "step": self.step,
            "target": self.target,
            "metric": self.metric,
            "every": self.every,
            "patience": self.patience,
            "ease": self.ease,
            "tolerance": self.tolerance,
            "mode": self.mode,
        }


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (Constant, Linear, Cosine, Warmup, WarmupCosine, Step, Adaptive)
}


# ------------------------------------------------------------------------------------- building


def is_schedule_spec(x: Any) -> bool:
    """True for a dict (any mapping) with a ``schedule`` key."""
    return isinstance(x, Mapping) and "schedule" in x


def _keys(cls: type[Schedule]) -> str:
    keys = ", ".join(cls.required)
    if cls.optional:
        keys += f" (optional: {', '.join(cls.optional)})"
    return keys


def build_schedule(spec: float | int | Mapping[str, Any] | Schedule, field: str) -> Schedule:
    """A :class:`Schedule` from a number (a :class:`Constant`) or a spec dict.

    ``field`` is the dotted config path (``objectives.mae.params.mask_ratio``); every error is a
    :class:`~workbench.errors.ConfigError` naming it (or one of its keys, ``<field>.start``), the
    bad value and what is allowed. A :class:`Schedule` is returned as it is.
    """
    if isinstance(spec, Schedule):
        return spec
    if _is_number(spec):
        return Constant(spec, field=field)
    known = ", ".join(SCHEDULES)
    if not isinstance(spec, Mapping):
        raise ConfigError(field, spec, f"a number or a schedule spec, a dict with a 'schedule' key ({known})")
    if "schedule" not in spec:
        raise ConfigError(field, dict(spec), f"a schedule spec needs a 'schedule' key, one of {known}")
    name = spec["schedule"]
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ConfigError(f"{field}.schedule", name, f"one of {known}")
    cls = SCHEDULES[name]
    allowed = set(cls.required) | set(cls.optional)
    for key in spec:
        if key != "schedule" and key not in allowed:
            raise ConfigError(f"{field}.{key}", spec[key], f"unknown key; a {name} schedule takes {_keys(cls)}")
    missing = [key for key in cls.required if key not in spec]
    if missing:
        raise ConfigError(field, dict(spec), f"missing {', '.join(missing)}; a {name} schedule takes {_keys(cls)}")
    kwargs = {key: value for key, value in spec.items() if key != "schedule"}
    return cls(**kwargs, field=field)


def schedule_fields(params: Mapping[str, Any], prefix: str) -> dict[str, Schedule]:
    """The schedules among an objective's ``params``, keyed by parameter name.

    Only entries that are schedule specs (dicts with a ``schedule`` key) are built, each under the
    field ``<prefix>.<name>`` for errors; everything else -- plain numbers included -- is left
    alone, so a constant hyper-parameter stays a plain number and costs nothing per step. Only the
    top level of ``params`` is walked (a nested dict without a ``schedule`` key is not a spec).
    """
    if not isinstance(params, Mapping):
        raise ConfigError(prefix, params, "a mapping of parameter names to values")
    return {
        name: build_schedule(value, f"{prefix}.{name}") for name, value in params.items() if is_schedule_spec(value)
    }


def check_range(spec: Any, field: str, ok: Any, allowed: str) -> Schedule:
    """Build ``spec`` (a number or a schedule spec) and check every value it names with ``ok``.

    A number is checked itself; a schedule on the values it moves between (``start`` and ``end``,
    a step schedule's ``values``), each reported under its own key (``<field>.end``). Raises
    :class:`~workbench.errors.ConfigError` naming the field, the value and ``allowed``.
    """
    schedule = build_schedule(spec, field)
    if isinstance(schedule, Constant):
        named = [(field, schedule.value(0, 1))]
    elif isinstance(schedule, Step):
        named = [(f"{field}.values[{i}]", v) for i, v in enumerate(schedule.values)]
    else:
        named = [(f"{field}.start", schedule.start), (f"{field}.end", schedule.end)]  # type: ignore[attr-defined]
    for where, value in named:
        if not ok(value):
            raise ConfigError(where, value, allowed)
    return schedule
