"""A notebook's headline numbers, written next to its runs so that tests and readers find them.

Every notebook of the series trains its runs under ``<RUNS_DIR>/<notebook>/`` and calls
:func:`record` with the few numbers its narrative states (for example the toy's final RankMe). They
land in ``<RUNS_DIR>/<notebook>/headline.json``; a headless run through papermill therefore leaves
evidence that a test can check without parsing notebook outputs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping

from ..atomic import atomic_write_text

FILENAME = "headline.json"


def notebook_dir(notebook: str, runs_dir: str | Path = "runs") -> Path:
    """The directory a notebook's runs and headline numbers live in: ``<runs_dir>/<notebook>``."""
    return Path(runs_dir) / notebook


def record(notebook: str, numbers: Mapping[str, float], runs_dir: str | Path = "runs", show: bool = True,
           replace: bool = False) -> Path:
    """Merge ``numbers`` into ``<runs_dir>/<notebook>/headline.json`` (written atomically) and print them.

    ``replace=True`` starts the file afresh: a notebook's main headline cell uses it, so that numbers
    an earlier execution wrote with other parameters never linger next to this execution's.

    Values are stored as floats; a value that is not a number raises ``TypeError`` naming its key.
    A value that is itself a mapping of numbers (an interval from
    :func:`workbench.analysis.summaries.seed_interval`) is stored as one number per entry, under
    ``<key>/<entry>``: ``{"acc": {"mean": 0.9, "low": 0.8}}`` writes ``acc/mean`` and ``acc/low``.
    Non-finite values are kept (as ``NaN`` / ``Infinity``) so a failed phenomenon is visible, not hidden.
    """
    clean: dict[str, float] = {}
    for key, value in _flat(numbers).items():
        try:
            clean[key] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"headline number {key!r} must be a number, got {value!r}") from None
    path = notebook_dir(notebook, runs_dir) / FILENAME
    merged = {**({} if replace else load(notebook, runs_dir)), **clean}
    atomic_write_text(path, json.dumps(merged, indent=1, sort_keys=True) + "\n")
    if show:
        width = max((len(k) for k in clean), default=0)
        for key, value in clean.items():
            print(f"{key:<{width}}  {value:.4g}" if math.isfinite(value) else f"{key:<{width}}  {value}")
    return path


def _flat(numbers: Mapping, prefix: str = "") -> dict:
    out: dict = {}
    for key, value in numbers.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name}/"))
        else:
            out[name] = value
    return out


def load(notebook: str, runs_dir: str | Path = "runs") -> dict[str, float]:
    """The headline numbers recorded so far for ``notebook`` (empty when none)."""
    path = notebook_dir(notebook, runs_dir) / FILENAME
    return json.loads(path.read_text()) if path.is_file() else {}
