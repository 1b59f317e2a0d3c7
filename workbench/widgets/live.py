"""Loss curves that grow while a run trains.

:class:`LiveLossCurves` is a Lightning callback that owns a plotly ``FigureWidget``. When training
starts it attaches a small listener to the trainer's loggers, so it receives exactly what
``metrics.csv`` receives, when it receives it: Python numbers, at every logging interval
(``trainer.log_every_n_steps``) and at the end of every validation. Lightning has already turned
those values into numbers for its own logger, so the curves cost no device synchronisation inside a
training step, and their points sit at the same steps as the rows of ``metrics.csv``.

    curves = widgets.live_loss_curves()
    curves                              # shows the (empty) figure in the notebook
    run = wb.fit(config, callbacks=[curves])
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from plotly.subplots import make_subplots

# Logged values that are not losses or accuracies: schedules, learning rate, collapse monitors.
NOT_CURVES = ("lr", "momentum", "weight", "rankme", "std_l2")


def curve_panel(key: str, hyperparameters: frozenset[str] | set[str] = frozenset()) -> str | None:
    """Which panel a logged key belongs to: ``"loss"``, ``"accuracy"`` or None (not drawn).

    ``train/loss``, ``val/loss`` and every objective term (``train/<objective>/<term>``) are losses;
    a last segment starting with ``acc`` is an accuracy; the learning rate, scheduled
    hyper-parameters (``hyperparameters``, full keys) and monitors are left out, and so is
    everything outside ``train/`` and ``val/``.
    """
    stage, _, rest = key.partition("/")
    if stage not in ("train", "val") or not rest:
        return None
    last = rest.rsplit("/", 1)[-1]
    if key in hyperparameters or rest.startswith("monitor/") or last in NOT_CURVES:
        return None
    return "accuracy" if last.startswith("acc") else "loss"


class _Listener(Logger):
    """A logger that hands every logging event to its :class:`LiveLossCurves` (and stores nothing)."""

    def __init__(self, owner: "LiveLossCurves"):
        super().__init__()
        self.owner = owner

    @property
    def name(self) -> str:
        return "live-loss-curves"

    @property
    def version(self) -> str:
        return "0"

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.owner.add_points(int(step or 0), metrics, epoch=metrics.get("epoch"))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Hyper-parameters are in the run's config.yaml; nothing to draw."""


class LiveLossCurves(Callback):
    """A Lightning callback drawing the training and validation curves into ``self.figure``.

    Left panel: the total loss and every objective term; right panel: accuracies. Training values
    appear at each logging interval, validation values at the end of each validation (dotted, with
    markers). ``self.figure`` is a ``plotly.graph_objects.FigureWidget``: display it (or the callback
    itself) in a notebook before training starts and it updates in place.
    """

    def __init__(self, title: str = "Training curves", height: int = 360):
        self.title = title
        base = make_subplots(rows=1, cols=2, subplot_titles=("losses", "accuracy"))
        base.update_xaxes(title_text="step")
        base.update_yaxes(title_text="loss", row=1, col=1)
        base.update_yaxes(title_text="accuracy", range=[0, 1], row=1, col=2)
        base.update_layout(title=title, height=height, legend=dict(font_size=10), margin=dict(t=60))
        self.figure = go.FigureWidget(base)
        self._hyperparameters: set[str] = set()
        self._listener: _Listener | None = None
        self.updates = 0  # logging events drawn so far

    # ---- Lightning hooks ----------------------------------------------------------------------

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit" and trainer.is_global_zero and self._listener is None:
            self._listener = _Listener(self)
            trainer.loggers = [*trainer.loggers, self._listener]  # after the run's own logger

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        # Scheduled hyper-parameters are logged next to the losses; their keys are known up front.
        current = getattr(pl_module, "current_hyperparameters", None)
        self._hyperparameters = set(current()) if callable(current) else set()

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit" and self._listener is not None:
            trainer.loggers = [lg for lg in trainer.loggers if lg is not self._listener]
            self._listener = None

    # ---- drawing ------------------------------------------------------------------------------

    def add_points(self, step: int, values: dict[str, float], epoch: float | None = None) -> None:
        """Append one point per drawable key at ``step`` (a new trace for a key seen the first time)."""
        drawn = {k: float(v) for k, v in values.items() if curve_panel(k, self._hyperparameters) is not None}
        if not drawn:
            return
        names = [t.name for t in self.figure.data]
        with self.figure.batch_update():
            for key, value in sorted(drawn.items()):
                if key not in names:
                    is_val = key.startswith("val/")
                    self.figure.add_trace(
                        go.Scatter(x=[], y=[], name=key, mode="lines+markers" if is_val else "lines",
                                   line=dict(dash="dot") if is_val else None),
                        row=1, col=2 if curve_panel(key, self._hyperparameters) == "accuracy" else 1,
                    )
                    names.append(key)
                trace = self.figure.data[names.index(key)]
                trace.x = tuple(trace.x or ()) + (step,)
                trace.y = tuple(trace.y or ()) + (value,)
            where = f"step {step}" + ("" if epoch is None else f", epoch {int(epoch)}")
            self.figure.layout.title.text = f"{self.title} ({where})"
        self.updates += 1

    def curve(self, key: str) -> tuple[list[float], list[float]]:
        """The (steps, values) drawn so far for ``key`` (empty lists when it has none)."""
        for trace in self.figure.data:
            if trace.name == key:
                return list(trace.x or ()), list(trace.y or ())
        return [], []

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.figure)


def live_loss_curves(title: str = "Training curves", height: int = 360) -> LiveLossCurves:
    """A :class:`LiveLossCurves` callback; display it, then pass it to ``wb.fit(..., callbacks=[it])``."""
    return LiveLossCurves(title=title, height=height)
