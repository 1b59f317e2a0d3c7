"""Numbers over seeds: one row per run, then mean +- std per experiment.

A single run is one draw: a different seed changes the initialisation, the order of the batches
and the augmentations, and its final accuracy moves by a point or more. A claim that one recipe
beats another needs the spread over seeds next to the difference. These helpers make the table a
sweep (:func:`workbench.training.sweep.sweep`) is read through:

* :func:`final_numbers` -- the few numbers that summarise a finished run;
* :func:`seed_table` -- one row per run (its experiment, preset, seed and those numbers);
* :func:`mean_std` -- per experiment (or any column): mean, standard deviation over seeds, and count;
* :func:`mean_pm_std` -- the same as ``"0.912 ± 0.004"`` strings, for display.

An *experiment* is a config less its seed (and name and place, :func:`workbench.config.experiment_fields`):
two runs of one preset with other overrides are two experiments, never averaged together.

The standard deviation is the sample one (``ddof=1``, pandas' default): with three seeds it is a
rough estimate, and with one seed it is undefined (NaN), not 0.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import pandas as pd

from ..config import experiment_fields
from ..runs import Run, load_run

#: The per-run numbers :func:`final_numbers` returns, in display order.
NUMBERS = ("val_acc", "linear_acc", "knn_acc", "rankme")


def val_accuracy(run: Run) -> float:
    """The last validation accuracy a supervised objective logged (``val/<objective>/acc``, or the
    last layer's ``acc_l<depth>`` under deep supervision); NaN for a run without a label head."""
    metrics = run.metrics
    if metrics.empty:
        return math.nan
    depth = run.config.model.depth
    for suffix in ("/acc", f"/acc_l{depth}"):
        for column in metrics.columns:
            if column.startswith("val/") and column.endswith(suffix):
                values = metrics[column].dropna()
                if len(values):
                    return float(values.iloc[-1])
    return math.nan


def final_numbers(run: Run, pool: str = "mean") -> dict[str, float]:
    """The numbers that summarise a finished run, at its last diagnostics epoch and last layer.

    ``val_acc``: the final validation accuracy of its label head (NaN without one); ``linear_acc``
    and ``knn_acc``: the label's linear and kNN probes on the probe set's ``pool`` embedding;
    ``rankme``: the RankMe of that embedding. A number the run did not record is NaN.
    """
    from .readouts import at_last_layer

    out = {"val_acc": val_accuracy(run)}
    for metric in ("linear_acc", "knn_acc", "rankme"):
        try:
            out[metric] = at_last_layer(run, metric, pool)
        except (KeyError, ValueError):  # no diagnostics, or a dataset without labels
            out[metric] = math.nan
    return out


def _value(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def experiment_labels(runs: "Sequence[Run]") -> list[str]:
    """A label per run, equal for runs of one experiment (configs equal but for the seed) and
    different between experiments: the preset, followed -- where several experiments share a
    preset -- by the fields in which that experiment differs from the preset's others, e.g.
    ``lejepa [objectives.lejepa.weight=0.5]``."""
    fields = [experiment_fields(run.config) for run in runs]
    presets = [f.get("preset") or "(no preset)" for f in fields]
    # the distinct experiments of each preset, in order of first appearance
    distinct: dict[str, list[dict]] = {}
    for preset, f in zip(presets, fields):
        if f not in distinct.setdefault(preset, []):
            distinct[preset].append(f)
    labels = []
    for preset, f in zip(presets, fields):
        others = distinct[preset]
        if len(others) == 1:
            labels.append(preset)
            continue
        differ = sorted({k for o in others for k in set(o) | set(f) if o.get(k, ...) != f.get(k, ...)})
        shown = [f"{k}={_value(f[k])}" if k in f else f"{k} unset" for k in differ]
        labels.append(f"{preset} [{' '.join(shown)}]")
    # Values that print alike (1 and "1", a list and its joined string) would merge two experiments
    # under one label: number such labels apart, in order of first appearance.
    keys = [json.dumps(f, sort_keys=True, default=str) for f in fields]
    experiments_of: dict[str, list[str]] = {}
    for label, key in zip(labels, keys):
        if key not in experiments_of.setdefault(label, []):
            experiments_of[label].append(key)
    return [label if len(experiments_of[label]) == 1 else f"{label} #{experiments_of[label].index(key) + 1}"
            for label, key in zip(labels, keys)]


def seed_table(runs: "Sequence[Run | str]", pool: str = "mean") -> pd.DataFrame:
    """One row per run: ``run``, ``experiment`` (:func:`experiment_labels`), ``preset``, ``seed`` and
    :func:`final_numbers`."""
    loaded = [r if isinstance(r, Run) else load_run(r) for r in runs]
    rows = []
    for run, experiment in zip(loaded, experiment_labels(loaded)):
        config = run.config
        rows.append({"run": run.name, "experiment": experiment, "preset": config.preset or run.name,
                     "seed": config.seed, **final_numbers(run, pool)})
    return pd.DataFrame(rows, columns=["run", "experiment", "preset", "seed", *NUMBERS])


def mean_std(table: pd.DataFrame, by: str = "experiment", numbers: Sequence[str] = NUMBERS) -> pd.DataFrame:
    """Mean, sample standard deviation and count of each number per ``by`` group.

    Columns are flat: ``<number>/mean``, ``<number>/std`` and one ``n`` (runs in the group); groups
    keep the order in which they first appear. NaN values (a number a run did not record) are left
    out of that number's mean and std.
    """
    if by not in table.columns:
        raise KeyError(f"cannot group by {by!r}: the table has columns {', '.join(table.columns)}")
    missing = [n for n in numbers if n not in table.columns]
    if missing:
        raise KeyError(f"the table has no column {missing[0]!r}; it has {', '.join(table.columns)}")
    order = list(dict.fromkeys(table[by]))
    grouped = table.groupby(by, sort=False)
    out = pd.DataFrame(index=pd.Index(order, name=by))
    for number in numbers:
        out[f"{number}/mean"] = grouped[number].mean()
        out[f"{number}/std"] = grouped[number].std(ddof=1)
    out["n"] = grouped.size()
    return out


def mean_pm_std(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """``mean_std``'s table as ``"mean ± std"`` strings, one column per number (plus ``n``).

    A number that no run of a group recorded shows as ``"-"``; a single run shows its value alone.
    """
    numbers = [c[: -len("/mean")] for c in summary.columns if c.endswith("/mean")]
    out = pd.DataFrame(index=summary.index)
    for number in numbers:
        def cell(mean: float, std: float) -> str:
            if not math.isfinite(mean):
                return "-"
            return f"{mean:.{digits}f}" if not math.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"

        out[number] = [cell(m, s) for m, s in zip(summary[f"{number}/mean"], summary[f"{number}/std"])]
    if "n" in summary:
        out["n"] = summary["n"]
    return out
