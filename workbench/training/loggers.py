"""Experiment trackers from the config: ``trainer.loggers: [csv, tensorboard, wandb, mlflow]``.

The CSV logger always runs: ``metrics.csv`` in the run directory is the run's contract, whatever
else is asked for. Each tracker is optional and its package is imported only when the config names
it; a missing package is a :class:`~workbench.errors.ConfigError` naming what to install.

Where each tracker writes:

- ``tensorboard``: event files under ``<run>/tensorboard/`` (``tensorboard --logdir runs``);
- ``wandb``: offline mode under ``<run>/wandb/`` (``wandb sync <run>/wandb/offline-run-*`` uploads
  it later); ``WANDB_MODE=online`` (or ``disabled``) in the environment changes that;
- ``mlflow``: a local file store ``file:<run>/mlruns`` (``mlflow ui --backend-store-uri
  <run>/mlruns``), or the server named by ``MLFLOW_TRACKING_URI`` when it is set.

Besides every logged training and validation value, :class:`TrackerDiagnostics` sends the config
(as hyper-parameters) and, after each diagnostics pass, the per-layer diagnostics: one scalar per
(metric, pool, layer), the pass's rows as a table, and the collapse heat-maps (layer x epoch) as
images.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import pandas as pd
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger

from ..config import RunConfig, flat_fields
from ..errors import ConfigError
from ..validation import LOGGERS, check_loggers, missing_tracker
from .csv_logger import AtomicCSVLogger

# Tracking URIs this module chose: MLflow copies the URI it is given into MLFLOW_TRACKING_URI (for
# its sub-processes), which must not pass for the user's choice at the next run of the process.
_OWN_MLFLOW_URIS: set[str] = set()

# The collapse metrics drawn as heat-map images (as in the collapse dashboard), and the columns of
# the per-layer text table; metrics a run did not record are left out.
HEATMAP_METRICS = ("rankme", "effective_rank", "std_l2", "uniformity", "linear_acc")
TABLE_METRICS = ("rankme", "effective_rank", "std_l2", "uniformity", "linear_acc", "knn_acc")


def _import_tracker(name: str, names: Sequence[str]) -> None:
    """Import the package of the ``name`` logger, or raise the ConfigError that says what to install."""
    try:
        importlib.import_module(LOGGERS[name])
    except ImportError:
        raise ConfigError("trainer.loggers", list(names), missing_tracker(name)) from None


def build_loggers(config: RunConfig, run_dir: str | Path) -> list[Logger]:
    """The run's Lightning loggers: the CSV logger writing ``<run>/metrics.csv`` first, then every
    tracker named in ``config.trainer.loggers``, in that order (``csv`` is always there, listed or not).

    An unknown name, or a tracker whose package is missing, raises :class:`ConfigError` before any
    logger is built.
    """
    run_dir = Path(run_dir)
    names = list(config.trainer.loggers)
    check_loggers(names)
    for name in names:
        if LOGGERS[name] is not None:
            _import_tracker(name, names)
    loggers: list[Logger] = [AtomicCSVLogger(save_dir=run_dir.parent, name=run_dir.name, version="")]
    for name in names:
        if name == "tensorboard":
            from lightning.pytorch.loggers import TensorBoardLogger

            # version "": the event files go straight into <run>/tensorboard/ (no version_N level)
            loggers.append(TensorBoardLogger(save_dir=run_dir, name="tensorboard", version="",
                                             default_hp_metric=False))
        elif name == "wandb":
            from lightning.pytorch.loggers import WandbLogger

            # offline unless WANDB_MODE says otherwise (online, or disabled)
            offline = os.environ.get("WANDB_MODE", "offline") == "offline"
            loggers.append(WandbLogger(name=run_dir.name, save_dir=run_dir, offline=offline,
                                       project=os.environ.get("WANDB_PROJECT", "workbench")))
        elif name == "mlflow":
            from lightning.pytorch.loggers import MLFlowLogger

            uri = os.environ.get("MLFLOW_TRACKING_URI")
            if not uri or uri in _OWN_MLFLOW_URIS:  # the user named no server: the run's own file store
                uri = (run_dir / "mlruns").resolve().as_uri()
                _OWN_MLFLOW_URIS.add(uri)
                # MLflow 3 refuses a file store unless it is allowed; a user's explicit "false" stands
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            loggers.append(MLFlowLogger(experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", "workbench"),
                                        run_name=run_dir.name, tracking_uri=uri))
    return loggers


def tracker_callbacks(loggers: Sequence[Logger], run_dir: str | Path) -> list[Callback]:
    """``[TrackerDiagnostics]`` when ``loggers`` hold a tracker besides the CSV logger, else ``[]``.
    Place it after the diagnostics callback: it forwards the rows that callback wrote."""
    trackers = [lg for lg in loggers if not isinstance(lg, AtomicCSVLogger)]
    return [TrackerDiagnostics(run_dir, trackers)] if trackers else []


def finish_trackers(loggers: Sequence[Logger], failed: bool = False) -> None:
    """End the tracker runs that Lightning leaves open: a W&B run stays active until the process
    exits, and the next ``WandbLogger`` in the same process would log into it. Call once training
    and testing are over (or failed)."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
            logger.experiment.finish(exit_code=1 if failed else 0)


# --------------------------------------------------------------------------------------------
# Heat-maps as images (no plotting library: a colour map applied to the grid)
# --------------------------------------------------------------------------------------------


def _viridis() -> np.ndarray:
    """Plotly's Viridis stops as a K x 3 float array (0..255)."""
    from plotly.colors import hex_to_rgb, sequential

    return np.array([hex_to_rgb(c) for c in sequential.Viridis], dtype=np.float64)


def heatmap_image(grid: np.ndarray, cell: int = 16, reverse: bool = False,
                  missing: tuple[int, int, int] = (128, 128, 128)) -> np.ndarray:
    """An R x C grid of values as an ``(R * cell) x (C * cell) x 3`` uint8 RGB image.

    Each value is scaled linearly between the grid's finite minimum (dark end of Viridis) and maximum
    (bright end), colours interpolated linearly between Viridis' stops, and every cell drawn as a
    ``cell x cell`` block (nearest-neighbour upscaling). Row 0 of the grid is the top row of the
    image. ``reverse`` puts the minimum at the bright end; NaN cells get ``missing``; a constant grid
    is drawn in the middle colour.
    """
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 2 or grid.size == 0:
        raise ValueError(f"heatmap_image needs a non-empty 2-D grid, got shape {grid.shape}")
    if not (isinstance(cell, int) and cell >= 1):
        raise ValueError(f"cell={cell!r} is invalid: an integer >= 1 (pixels per grid cell)")
    finite = np.isfinite(grid)
    lo, hi = (grid[finite].min(), grid[finite].max()) if finite.any() else (0.0, 0.0)
    t = np.full(grid.shape, 0.5) if hi <= lo else (grid - lo) / (hi - lo)
    if reverse:
        t = 1.0 - t
    stops = _viridis()
    positions = np.linspace(0.0, 1.0, len(stops))
    flat = np.where(finite, t, 0.0).ravel()
    rgb = np.stack([np.interp(flat, positions, stops[:, c]) for c in range(3)], axis=1).reshape(*grid.shape, 3)
    rgb[~finite] = missing
    image = np.round(rgb).astype(np.uint8)
    return np.repeat(np.repeat(image, cell, axis=0), cell, axis=1)


def layer_epoch_grid(rows: pd.DataFrame, metric: str, pool: str) -> pd.DataFrame:
    """One metric of one pool from tidy diagnostics rows as a layer x epoch table, the deepest layer
    first (the top row of an image), epochs ascending."""
    part = rows[(rows["metric"] == metric) & (rows["pool"] == pool)]
    grid = part.pivot_table(index="layer", columns="epoch", values="value", aggfunc="last")
    return grid.sort_index(ascending=False).reindex(sorted(grid.columns), axis=1)


def layer_table(rows: pd.DataFrame, pool: str, metrics: Sequence[str] = TABLE_METRICS) -> pd.DataFrame:
    """One diagnostics pass of one pool as a layer x metric table (layers ascending; metrics that
    were not recorded left out)."""
    part = rows[(rows["pool"] == pool) & rows["metric"].isin(metrics)]
    table = part.pivot_table(index="layer", columns="metric", values="value", aggfunc="last").sort_index()
    return table[[m for m in metrics if m in table.columns]]


def markdown_table(table: pd.DataFrame) -> str:
    """A small table as markdown (what TensorBoard's text dashboard renders), values to 4 digits."""
    head = "| layer | " + " | ".join(table.columns) + " |"
    rule = "|---" * (len(table.columns) + 1) + "|"
    body = ["| " + " | ".join([str(index)] + [f"{v:.4g}" for v in row]) + " |" for index, row in
            zip(table.index, table.to_numpy())]
    return "\n".join([head, rule, *body])


def scalar_tag(metric: str, pool: str, layer: int) -> str:
    """The tracker name of one diagnostic: ``diagnostics/<metric>/<pool>/layer_<LL>``, with characters
    that some trackers refuse (MLflow: anything but letters, digits and ``_ / . -`` and space)
    replaced by ``-`` (``coherence/shape|color/cosine`` -> ``coherence/shape-color/cosine``)."""
    return re.sub(r"[^A-Za-z0-9_/. -]", "-", f"diagnostics/{metric}/{pool}/layer_{int(layer):02d}")


def _param(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str)) else json.dumps(value)


class TrackerDiagnostics(Callback):
    """Sends the config and every diagnostics pass to the trackers (not to ``metrics.csv``).

    At the start of training the config goes to each tracker as hyper-parameters (dotted fields).
    After each diagnostics pass (it must come after the diagnostics callback in the trainer's
    callbacks) it reads the new epochs of ``<run>/diagnostics.csv`` and logs, at the current
    optimisation step:

    - one scalar per (metric, pool, layer): :func:`scalar_tag`, plus ``diagnostics/epoch`` (CKA is
      left to the table: it is a matrix);
    - the pass's per-layer table (TensorBoard: markdown text per pool; W&B: a ``wandb.Table`` of the
      tidy rows; MLflow: a table artifact ``diagnostics/epoch=NNN.json``);
    - the collapse heat-maps of every epoch so far (x = epoch, y = layer, deepest on top, bright =
      healthy) as images, one per (metric, pool).

    A resumed run forwards only the passes it makes itself. Only global rank 0 logs.
    """

    def __init__(self, run_dir: str | Path, trackers: Sequence[Logger], cell: int = 16):
        self.run_dir = Path(run_dir)
        self.trackers = list(trackers)
        self.cell = cell
        self.logged: set[int] = set()
        self._seen: tuple[int, int] | None = None  # (mtime, size) of the file last read

    def _table(self, changed_only: bool = False) -> pd.DataFrame | None:
        """diagnostics.csv, or ``None`` when it does not exist (or, with ``changed_only``, when it is
        the file read last time: most epochs end without a diagnostics pass)."""
        path = self.run_dir / "diagnostics.csv"
        if not path.is_file():
            return None
        stat = path.stat()
        if changed_only and (stat.st_mtime_ns, stat.st_size) == self._seen:
            return None
        self._seen = (stat.st_mtime_ns, stat.st_size)
        return pd.read_csv(path)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        config = getattr(pl_module, "config", None)
        if isinstance(config, RunConfig):
            params = {k: _param(v) for k, v in flat_fields(config.to_dict()).items()}
            for tracker in self.trackers:
                tracker.log_hyperparams(params)
        if trainer.ckpt_path is not None:  # resumed: the passes already in the file were sent before
            table = self._table()
            self.logged = set() if table is None else {int(e) for e in table["epoch"].unique()}
        self.publish(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.publish(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.publish(trainer)

    def publish(self, trainer: L.Trainer) -> None:
        """Log every diagnostics epoch of the file not logged yet (rank 0 only)."""
        if not trainer.is_global_zero:
            return
        table = self._table(changed_only=True)
        if table is None or table.empty:
            return
        step = int(trainer.global_step)
        for epoch in sorted(int(e) for e in table["epoch"].unique() if int(e) not in self.logged):
            self.logged.add(epoch)
            so_far = table[table["epoch"] <= epoch]
            rows = table[table["epoch"] == epoch]
            scalars = {scalar_tag(r.metric, r.pool, r.layer): float(r.value)
                       for r in rows.itertuples() if not str(r.metric).startswith("cka/")}
            scalars["diagnostics/epoch"] = float(epoch)
            images = self._heatmaps(so_far)
            pools = list(dict.fromkeys(rows["pool"]))
            tables = {pool: layer_table(rows, pool) for pool in pools}
            for tracker in self.trackers:
                tracker.log_metrics(scalars, step=step)
                _send(tracker, epoch, step, rows, tables, images)

    def _heatmaps(self, rows: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
        from ..figures.layers import METRIC_GUIDE  # which way is healthy, as the dashboard reads it

        images = {}
        for pool in dict.fromkeys(rows["pool"]):
            for metric in HEATMAP_METRICS:
                grid = layer_epoch_grid(rows, metric, pool)
                if grid.size:
                    reverse = METRIC_GUIDE.get(metric, (True, ""))[0] is False
                    images[(metric, pool)] = heatmap_image(grid.to_numpy(), self.cell, reverse=reverse)
        return images


def _send(tracker: Logger, epoch: int, step: int, rows: pd.DataFrame, tables: dict[str, pd.DataFrame],
          images: dict[tuple[str, str], np.ndarray]) -> None:
    """The table and the heat-maps of one pass, each tracker in its own way."""
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

    if isinstance(tracker, TensorBoardLogger):
        writer = tracker.experiment
        for pool, table in tables.items():
            if not table.empty:
                writer.add_text(f"diagnostics_table/{pool}", f"epoch {epoch}\n\n" + markdown_table(table), step)
        for (metric, pool), image in images.items():
            writer.add_image(f"diagnostics_heatmap/{metric}/{pool}", image, step, dataformats="HWC")
        writer.flush()
    elif isinstance(tracker, WandbLogger):
        tracker.log_table("diagnostics/table", dataframe=rows.reset_index(drop=True), step=step)
        for (metric, pool), image in images.items():
            tracker.log_image(f"diagnostics_heatmap/{metric}/{pool}", images=[image], step=step,
                              caption=[f"{metric} ({pool}): x = epoch, y = layer (deepest on top), bright = healthy"])
    elif isinstance(tracker, MLFlowLogger):
        client, run_id = tracker.experiment, tracker.run_id
        client.log_table(run_id, data=rows.reset_index(drop=True), artifact_file=f"diagnostics/epoch={epoch:03d}.json")
        for (metric, pool), image in images.items():
            client.log_image(run_id, image, artifact_file=f"diagnostics/heatmap_{metric}_{pool}_epoch={epoch:03d}.png")
