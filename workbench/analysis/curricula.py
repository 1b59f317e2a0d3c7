"""Reading a curriculum back from a finished run: what a scheduled hyper-parameter did.

Every scheduled parameter of an objective (a mask ratio, a temperature, a weight) is logged at each
logging step as ``train/<objective>/<param>`` in ``metrics.csv`` (see
:meth:`workbench.training.module.WorkbenchModule.current_hyperparameters`). These helpers turn that column
into the numbers a notebook about curricula states:

* :func:`trace` -- the logged values against the optimisation step (:func:`traces`: several runs);
* :func:`final_value` -- where the parameter ended;
* :func:`adaptive_moves` -- how many times an adaptive schedule raised (or eased) its difficulty.

An adaptive schedule (:class:`workbench.schedules.Adaptive`) moves in whole ``step`` increments, so
the climb of the logged trace divided by ``step`` counts the raises, even when two raises fall
between two logged rows; descents (``ease: true``) count the same way. The value after the last
step -- a check can raise it after the last logged row -- is the schedule state saved in the run's
``checkpoints/last.ckpt``. A raise and an ease inside one logging interval cancel and are not seen:
log more often (``trainer.log_every_n_steps``) when that matters.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..runs import Run
from ..schedules import Adaptive, build_schedule, is_schedule_spec


def column(objective: str, param: str) -> str:
    """The ``metrics.csv`` column a scheduled objective parameter is logged under.

    >>> column("mae", "mask_ratio")
    'train/mae/mask_ratio'
    """
    return f"train/{objective}/{param}"


def trace(run: Run, objective: str, param: str) -> pd.DataFrame:
    """The logged values of ``objectives.<objective>.params.<param>``: columns ``step``, ``value``.

    Raises ``KeyError`` naming the objective's logged columns when this one does not exist (a
    parameter that is a plain number is not logged: it never changes).
    """
    name = column(objective, param)
    metrics = run.metrics
    if name not in metrics:
        logged = sorted(c for c in metrics.columns if c.startswith(f"train/{objective}/"))
        raise KeyError(f"{name!r} is not in {run.path / 'metrics.csv'}: only scheduled parameters are logged "
                       f"(is objectives.{objective}.params.{param} a schedule spec?); columns of {objective}: "
                       f"{', '.join(logged) or 'none'}")
    rows = metrics[metrics[name].notna()]
    return pd.DataFrame({"step": rows["step"].astype(int), "value": rows[name].astype(float)}).reset_index(drop=True)


def traces(runs: "dict[str, Run]", objective: str, param: str) -> pd.DataFrame:
    """One tidy table (run, step, value) of a parameter across several runs, keyed by label.

    A run where the parameter is a plain number contributes two rows, at step 0 and at its last
    step, so a constant draws as a flat line next to the schedules.
    """
    frames = []
    for label, run in runs.items():
        spec = _param_spec(run, objective, param)
        if is_schedule_spec(spec):
            frame = trace(run, objective, param)
        else:
            last = int(run.summary.get("steps") or (run.metrics["step"].max() if "step" in run.metrics else 0))
            frame = pd.DataFrame({"step": [0, last], "value": [float(spec)] * 2})
        frames.append(frame.assign(run=label)[["run", "step", "value"]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run", "step", "value"])


def final_value(run: Run, objective: str, param: str) -> float:
    """The value a scheduled parameter ended training with.

    An adaptive schedule's value is read from the state saved in ``checkpoints/last.ckpt`` (exact:
    a raise decided after the last logged step is included); a time-based schedule's is its last
    logged value. A parameter that is a plain number in the config is not logged and is returned as
    it is.
    """
    spec = _param_spec(run, objective, param)
    if not is_schedule_spec(spec):
        return float(spec)
    saved = _saved_value(run, objective, param)
    if saved is not None:
        return saved
    values = trace(run, objective, param)["value"]
    return float(values.iloc[-1]) if len(values) else math.nan


def adaptive_moves(run: Run, objective: str, param: str) -> dict[str, int]:
    """How many times the adaptive schedule of ``objectives.<objective>.params.<param>`` moved.

    Returns ``{"raises": r, "eases": e, "level": r - e}``: ``level`` is how many steps above
    ``start`` the parameter ended. Raises ``ValueError`` when the parameter is not an adaptive
    schedule in the run's config (a time-based schedule has no raises to count).
    """
    spec = _param_spec(run, objective, param)
    field = f"objectives.{objective}.params.{param}"
    if not (is_schedule_spec(spec) and spec.get("schedule") == "adaptive"):
        raise ValueError(f"{field} of {run.name} is {spec!r}, not an adaptive schedule "
                         "({schedule: adaptive, start, end, step, target, metric}); only those raise")
    schedule = build_schedule(spec, field)
    assert isinstance(schedule, Adaptive)
    # The schedule begins at `start` (a raise may already precede the first logged row). Each value
    # is turned into its level, the number of moves from `start` (the move that reaches `end` may be
    # a partial step when end - start is not a multiple of step, hence ceil); the tolerance absorbs
    # the rounding of values logged as float32, which is far below a thousandth of a step.
    values = [schedule.start, *trace(run, objective, param)["value"].tolist()]
    saved = _saved_value(run, objective, param)  # the state after the last step, when a checkpoint exists
    if saved is not None:
        values.append(saved)
    levels = np.ceil(np.abs(np.asarray(values, dtype=np.float64) - schedule.start) / schedule.step - 1e-3)
    changes = np.diff(levels)
    raises, eases = int(changes[changes > 0].sum()), int(-changes[changes < 0].sum())
    return {"raises": raises, "eases": eases, "level": raises - eases}


def _saved_value(run: Run, objective: str, param: str) -> float | None:
    """The value in the schedule state of the run's last checkpoint (None without a checkpoint, or for
    a time-based schedule, which saves no state)."""
    if not run.checkpoint.is_file():
        return None
    from ..training.checkpointing import read_checkpoint  # late: reading a csv should not import torch

    checkpoint = read_checkpoint(run.checkpoint)
    state = checkpoint.get("schedules", {}).get(f"objectives.{objective}.params.{param}", {})
    return float(state["value"]) if "value" in state else None


def _param_spec(run: Run, objective: str, param: str):
    config = run.config
    if objective not in config.objectives:
        raise KeyError(f"{run.name} has no objective {objective!r}; it has {', '.join(config.objectives)}")
    params = config.objectives[objective].params
    if param not in params:
        raise KeyError(f"objectives.{objective}.params has no {param!r} set in {run.name} "
                       f"(set: {', '.join(params) or 'none'}; defaults are constants and are not logged)")
    return params[param]
