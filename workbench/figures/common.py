"""What every figure needs before it draws: its table, the epoch and pool it shows, and colours.

A figure reads either a run directory (:class:`~workbench.runs.Run`) or a table a notebook already
holds. When the data is missing the error says which run, which file and why (for example that the
run was trained with ``diagnostics.enabled=false``), instead of drawing an empty frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from plotly.colors import sample_colorscale

from ..errors import ConfigError, WorkbenchError
from ..runs import Run, load_run

DIAGNOSTIC_COLUMNS = ["epoch", "layer", "pool", "metric", "value"]


class FigureDataError(WorkbenchError, LookupError):
    """The data a figure needs is missing or empty. The message names what is missing and why."""


def as_run(source: Run | str | Path) -> Run:
    """A :class:`Run` from a run or a path to a run directory (checked to be one)."""
    return source if isinstance(source, Run) else load_run(source)


def as_runs(runs: "Sequence[Run | str | Path] | str | Path") -> list[Run]:
    """A list of runs from runs or paths, or from a directory whose run sub-directories are all taken."""
    if isinstance(runs, (str, Path)):
        root = Path(runs)
        if not root.is_dir():
            raise FigureDataError(f"{root} is not a directory of runs")
        runs = [p for p in sorted(root.iterdir()) if (p / "config.yaml").is_file()]
    out = list({r.path.resolve(): r for r in map(as_run, runs)}.values())  # a run given twice counts once
    if not out:
        raise FigureDataError("no runs were given (an empty list, or a directory without run sub-directories)")
    return out


def _why_no_diagnostics(run: Run) -> str:
    """The reason a run has no diagnostics table, as precisely as its files allow."""
    try:
        config = run.config
    except Exception:  # an unreadable config: say what is missing, not why
        return f"run {run.name} has no diagnostics.csv"
    if not config.diagnostics.enabled:
        return (f"run {run.name} has no diagnostics.csv: diagnostics.enabled was false "
                "(train again with diagnostics.enabled=true)")
    status = run.summary.get("status", "not started")
    return (f"run {run.name} has no diagnostics.csv yet (status: {status}); the first pass is written "
            "before training starts")


def diagnostics_table(source: "pd.DataFrame | Run | str | Path") -> tuple[pd.DataFrame, str]:
    """The tidy diagnostics table (epoch, layer, pool, metric, value) of one run, and its name.

    ``source`` is a run, a run directory, or a table (``Run.diagnostics`` or one run's rows of
    ``wb.compare_runs``). A table with several runs in its ``run`` column is refused: every figure
    that reads this shows one run.
    """
    if isinstance(source, pd.DataFrame):
        missing = [c for c in DIAGNOSTIC_COLUMNS if c not in source.columns]
        if missing:
            raise FigureDataError(f"the diagnostics table lacks the columns {missing}; expected {DIAGNOSTIC_COLUMNS} "
                                  "(Run.diagnostics or wb.compare_runs)")
        name = "diagnostics"
        if "run" in source.columns:
            names = list(dict.fromkeys(source["run"]))
            if len(names) > 1:
                raise FigureDataError(f"the table holds {len(names)} runs ({', '.join(map(str, names[:4]))}, ...): "
                                      "select one, e.g. table[table.run == name]")
            name = str(names[0]) if names else name
        if source.empty:
            raise FigureDataError("the diagnostics table is empty")
        return source, name
    run = as_run(source)
    table = run.diagnostics
    if table.empty:
        raise FigureDataError(_why_no_diagnostics(run))
    return table, run.name


def choose(field: str, value: object, available: Iterable[object], what: str) -> None:
    """Raise a :class:`ConfigError` naming ``field`` when ``value`` is not among ``available``."""
    available = list(available)
    if value not in available:
        shown = ", ".join(repr(a) for a in available) if available else "none"
        raise ConfigError(field, value, f"one of {shown} ({what})")


def select(table: pd.DataFrame, pool: str, metrics: Sequence[str] | None = None, prefix: str | None = None,
           name: str = "diagnostics") -> pd.DataFrame:
    """Rows of ``pool`` whose metric is in ``metrics`` (or starts with ``prefix``), with clear errors.

    Token metrics (``token_cosine``, ``residual_ratio``) are recorded under the pool ``tokens`` only;
    asking for them under ``mean`` or ``cls`` reads the ``tokens`` rows instead.
    """
    pools = sorted(set(table["pool"]) - {"tokens"}) or sorted(set(table["pool"]))
    if pool not in set(table["pool"]):
        choose("pool", pool, pools, f"pools recorded in {name}")
    rows = table[table["pool"] == pool]
    if prefix is not None:
        picked = rows[rows["metric"].astype(str).str.startswith(prefix)]
        if picked.empty:
            raise FigureDataError(f"{name} has no '{prefix}*' metrics for pool {pool!r}")
        return picked
    tokens = table[table["pool"] == "tokens"]
    parts = []
    for metric in metrics or ():
        part = rows[rows["metric"] == metric]
        if part.empty:
            part = tokens[tokens["metric"] == metric]
        if part.empty:
            known = sorted(set(rows["metric"]) | set(tokens["metric"]))
            raise FigureDataError(f"{name} has no metric {metric!r} for pool {pool!r}; recorded: "
                                  f"{', '.join(m for m in known if '/' not in m)} and "
                                  f"{len([m for m in known if '/' in m])} per-factor / CKA / coherence metrics")
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else rows.iloc[:0]


def pick_epoch(rows: pd.DataFrame, epoch: int | None, name: str = "diagnostics") -> int:
    """``epoch`` checked against the epochs in ``rows``; the last one when ``None``."""
    epochs = sorted(int(e) for e in set(rows["epoch"]))
    if not epochs:
        raise FigureDataError(f"{name} has no rows to choose an epoch from")
    if epoch is None:
        return epochs[-1]
    choose("epoch", epoch, epochs, f"epochs with diagnostics in {name}")
    return int(epoch)


def depth_colours(n: int, scale: str = "Viridis") -> list[str]:
    """``n`` colours from dark (shallow) to bright (deep), so layer order reads off the colour."""
    if n <= 1:
        return sample_colorscale(scale, [0.0])
    return sample_colorscale(scale, list(np.linspace(0.0, 0.92, n)))  # the last 8% of Viridis is pale yellow


def with_alpha(colour: str, alpha: float) -> str:
    """``rgb(r, g, b)`` or ``#rrggbb`` as ``rgba(r, g, b, alpha)`` (for mean +- std bands)."""
    if colour.startswith("#"):
        r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    else:
        r, g, b = (int(float(v)) for v in colour[colour.index("(") + 1 : colour.index(")")].split(",")[:3])
    return f"rgba({r}, {g}, {b}, {alpha})"
