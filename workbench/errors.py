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


class DataError(WorkbenchError, OSError):
    """A dataset is missing, unreadable or corrupt. The message names the path and how to get the data."""


class NonFiniteLossError(WorkbenchError, FloatingPointError):
    """A loss term became NaN or infinite."""


class CheckpointError(WorkbenchError, OSError):
    """A checkpoint file is missing, truncated or corrupt. The message names the file."""
