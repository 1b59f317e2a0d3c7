"""Numbers over seeds: one row per run, then mean +- std per experiment.

A single run is one draw: a different seed changes the initialisation, the order of the batches
and the augmentations, and its final accuracy moves by a point or more. A claim that one recipe
beats another needs the spread over seeds next to the difference. These helpers make the table a
sweep (:func:`workbench.training.sweep.sweep`) is read through:

* :func:`final_numbers` -- the few numbers that summarise a finished run;
* :func:`seed_table` -- one row per run (its experiment, preset, seed and those numbers);
* :func:`mean_std` -- per experiment (or any column): mean, standard deviation over seeds, and count;
* :func:`mean_pm_std` -- the same as ``"0.912 ± 0.004"`` strings, for display;
* :func:`seed_interval` / :func:`seed_intervals` -- any diagnostics metric at any layer and pool:
  the mean over seeds with a Student-t confidence interval, for one experiment or per experiment;
* :func:`paired_difference` -- two recipes trained with the same seeds, paired by seed: the mean
  difference with its confidence interval, and whether the interval excludes zero;
* :func:`t_interval` -- the interval itself, on plain numbers; :func:`format_interval` for display.

The interval is the t-interval over seeds, ``mean ± t_{(1+c)/2, n-1} * sd / sqrt(n)``: it treats the
seeds as independent draws of one recipe and assumes their mean is roughly normal, which with three
or five seeds is an assumption, not a check. With one seed there is no spread to estimate: the
interval is (-inf, inf), never a zero-width one. A paired difference removes what two runs with one
seed share (the same initialisation, the same batches), so it is usually much narrower than the two
separate intervals suggest.

An *experiment* is a config less its seed (and name and place, :func:`workbench.config.experiment_fields`):
two runs of one preset with other overrides are two experiments, never averaged together.

The standard deviation is the sample one (``ddof=1``, pandas' default): with three seeds it is a
rough estimate, and with one seed it is undefined (NaN), not 0.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Sequence

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


# ----------------------------------------------------------------------------------------------
# intervals over seeds
# ----------------------------------------------------------------------------------------------


def t_interval(values: Iterable[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean of independent draws and its Student-t confidence interval.

    ``mean ± t * sd / sqrt(n)`` with ``sd`` the sample standard deviation (``ddof=1``) and ``t`` the
    ``(1 + confidence) / 2`` quantile of Student's t with ``n - 1`` degrees of freedom. NaN values
    (a number a run did not record) are left out and not counted in ``n``.

    Returns ``{"mean", "low", "high", "half_width", "sd", "n"}``. With ``n == 1`` the interval is
    unbounded (``low = -inf``, ``high = inf``, ``sd`` NaN); with ``n == 0`` every number is NaN.
    """
    from scipy import stats

    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be a number in (0, 1), e.g. 0.95; got {confidence!r}")
    kept = [float(v) for v in values if not math.isnan(float(v))]
    n = len(kept)
    if n == 0:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "half_width": math.nan, "sd": math.nan, "n": 0}
    mean = math.fsum(kept) / n
    if n == 1:
        return {"mean": mean, "low": -math.inf, "high": math.inf, "half_width": math.inf, "sd": math.nan, "n": 1}
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in kept) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half, "sd": sd, "n": n}


def _loaded(runs: "Sequence[Run | str] | Run | str", what: str = "runs") -> list[Run]:
    if isinstance(runs, (Run, str)) or hasattr(runs, "__fspath__"):
        runs = [runs]
    loaded = [r if isinstance(r, Run) else load_run(r) for r in runs]
    if not loaded:
        raise ValueError(f"{what}: no runs given")
    return loaded


def _run_value(run: Run, metric: str, layer: int | None, pool: str, epoch: int | None) -> float:
    """One run's number: ``val_acc`` (:func:`val_accuracy`) or a diagnostics metric at a layer."""
    from .readouts import at_layer

    if metric == "val_acc":
        return val_accuracy(run)
    try:
        return at_layer(run, metric, layer, pool, epoch)
    except (KeyError, ValueError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        raise type(exc)(f"run {run.path}: {message}") from None


def seed_values(runs: "Sequence[Run | str]", metric: str, layer: int | None = None, pool: str = "mean",
                epoch: int | None = None) -> pd.DataFrame:
    """One row per run: ``run``, ``experiment`` (:func:`experiment_labels`), ``seed`` and ``value``.

    ``metric`` is a diagnostics metric (``linear_acc``, ``factor/color``, ``coherence/...``) read
    at ``layer`` (default: the deepest recorded), ``pool`` and ``epoch`` (default: each run's last
    diagnostics epoch), or ``val_acc`` (the final validation accuracy; ``layer``, ``pool`` and
    ``epoch`` do not apply). A run that did not record the metric raises, naming the run.
    """
    loaded = _loaded(runs)
    rows = [{"run": run.name, "experiment": experiment, "seed": int(run.config.seed),
             "value": _run_value(run, metric, layer, pool, epoch)}
            for run, experiment in zip(loaded, experiment_labels(loaded))]
    return pd.DataFrame(rows, columns=["run", "experiment", "seed", "value"])


def _unique_seeds(values: pd.DataFrame) -> None:
    repeated = values[values.duplicated(["experiment", "seed"], keep=False)]
    if not repeated.empty:
        first = repeated.iloc[0]
        names = repeated.loc[(repeated["experiment"] == first["experiment"]) & (repeated["seed"] == first["seed"]), "run"]
        raise ValueError(f"runs {', '.join(map(str, names))} are one experiment ({first['experiment']}) with one "
                         f"seed ({first['seed']}): the interval is over independent seeds; keep one of them")


def seed_intervals(runs: "Sequence[Run | str]", metric: str, layer: int | None = None, pool: str = "mean",
                   epoch: int | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """:func:`t_interval` of ``metric`` over seeds, one row per experiment (order of first
    appearance): columns ``mean``, ``low``, ``high``, ``half_width``, ``sd``, ``n``.

    The runs of an experiment are its seeds (configs equal but for the seed); two runs of one
    experiment with one seed raise ``ValueError``. ``metric``, ``layer``, ``pool`` and ``epoch``
    are read as in :func:`seed_values`.
    """
    values = seed_values(runs, metric, layer, pool, epoch)
    _unique_seeds(values)
    order = list(dict.fromkeys(values["experiment"]))
    rows = [t_interval(values.loc[values["experiment"] == e, "value"], confidence) for e in order]
    return pd.DataFrame(rows, index=pd.Index(order, name="experiment"),
                        columns=["mean", "low", "high", "half_width", "sd", "n"])


def seed_interval(runs: "Sequence[Run | str]", metric: str, layer: int | None = None, pool: str = "mean",
                  epoch: int | None = None, confidence: float = 0.95) -> dict[str, Any]:
    """:func:`t_interval` of ``metric`` over the seeds of ONE experiment: ``{"mean", "low", "high",
    "half_width", "sd", "n"}`` (a dict :func:`workbench.analysis.headline.record` can write).

    Runs of several experiments raise ``ValueError`` naming them (use :func:`seed_intervals`):
    seeds of different recipes are never pooled.
    """
    values = seed_values(runs, metric, layer, pool, epoch)
    experiments = list(dict.fromkeys(values["experiment"]))
    if len(experiments) > 1:
        raise ValueError(f"the runs are {len(experiments)} experiments ({'; '.join(experiments)}): an interval "
                         "over seeds is one experiment's; use seed_intervals for one row per experiment")
    _unique_seeds(values)
    return t_interval(values["value"], confidence)


def paired_difference(runs_a: "Sequence[Run | str]", runs_b: "Sequence[Run | str]", metric: str,
                      layer: int | None = None, pool: str = "mean", epoch: int | None = None,
                      confidence: float = 0.95) -> dict[str, Any]:
    """Recipe A minus recipe B, paired by seed: the mean of the per-seed differences and its
    t-interval (:func:`t_interval` of the differences).

    ``runs_a`` and ``runs_b`` are each the seeds of one experiment; their seed sets must be equal
    (a seed run for one recipe only has no partner: ``ValueError`` naming the unpaired seeds). A
    seed where either value is NaN is left out of the differences (``n`` counts the pairs used).
    ``metric``, ``layer``, ``pool`` and ``epoch`` are read as in :func:`seed_values`.

    Returns ``{"mean", "low", "high", "half_width", "sd", "n", "excludes_zero"}``;
    ``excludes_zero`` is true when the whole interval lies on one side of 0 (never with one pair).
    """
    a, b = _loaded(runs_a, "runs_a"), _loaded(runs_b, "runs_b")
    values = seed_values([*a, *b], metric, layer, pool, epoch)
    sides = {"A": values.iloc[: len(a)], "B": values.iloc[len(a):]}
    for side, table in sides.items():
        experiments = list(dict.fromkeys(table["experiment"]))
        if len(experiments) > 1:
            raise ValueError(f"recipe {side}'s runs are {len(experiments)} experiments ({'; '.join(experiments)}): "
                             "pass the seeds of one experiment on each side")
        _unique_seeds(table)
    seeds_a, seeds_b = set(sides["A"]["seed"]), set(sides["B"]["seed"])
    if seeds_a != seeds_b:
        raise ValueError(f"the recipes were not trained with the same seeds: only A ({sides['A']['experiment'].iloc[0]}) "
                         f"has {sorted(seeds_a - seeds_b)}, only B ({sides['B']['experiment'].iloc[0]}) has "
                         f"{sorted(seeds_b - seeds_a)}; a paired difference needs one run of each recipe per seed")
    by_seed = {side: dict(zip(t["seed"], t["value"])) for side, t in sides.items()}
    differences = [by_seed["A"][s] - by_seed["B"][s] for s in sorted(seeds_a)]
    out = t_interval(differences, confidence)
    out["excludes_zero"] = bool(out["low"] > 0 or out["high"] < 0)
    return out


def format_interval(result: dict[str, Any], digits: int = 3) -> str:
    """A :func:`t_interval`-style dict as ``"0.912 [0.905, 0.919] (n=3)"``; one seed shows
    ``"0.912 (n=1, no interval)"`` and no value ``"-"``."""
    mean, n = result["mean"], int(result["n"])
    if n == 0 or not math.isfinite(mean):
        return "-"
    if n == 1:
        return f"{mean:.{digits}f} (n=1, no interval)"
    return f"{mean:.{digits}f} [{result['low']:.{digits}f}, {result['high']:.{digits}f}] (n={n})"
