"""Exceptions a user can cause, each with a message that names what is wrong and how to fix it."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on purpose."""


class ConfigError(WorkbenchError, ValueError):
    """A configuration value is invalid.

    The message always names the dotted field (``model.depth``), the bad value and what is allowed.
    """

    def __init__(self, field: str, value: object, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}={value!r} is invalid: {allowed}")


def check_one_of(field: str, value: object, choices, detail: str = "") -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices``: the one check of "one of
    these values" (``detail`` is appended to the allowed values, e.g. what each one means)."""
    choices = tuple(choices)
    if value not in choices:
        allowed = f"one of {', '.join(str(c) for c in choices)}"
        raise ConfigError(field, value, f"{allowed} ({detail})" if detail else allowed)


class DataError(WorkbenchError, OSError):
    """A dataset is missing, unreadable or corrupt. The message names the path and how to get the data."""


class NonFiniteLossError(WorkbenchError, FloatingPointError):
    """A loss term became NaN or infinite."""


class CheckpointError(WorkbenchError, OSError):
    """A checkpoint file is missing, truncated or corrupt. The message names the file."""
