"""Trackers from the config (``trainer.loggers``): the CSV logger always, the others only when asked,
with an error naming the package to install when one is missing; TensorBoard read back with its own
reader and compared with metrics.csv and diagnostics.csv; W&B and MLflow when they are installed."""

import importlib.util
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench.errors import ConfigError
from workbench.training.csv_logger import AtomicCSVLogger
from workbench.training.loggers import (
    TrackerDiagnostics,
    build_loggers,
    heatmap_image,
    layer_epoch_grid,
    layer_table,
    markdown_table,
    scalar_tag,
    tracker_callbacks,
)

SMALL = [
    "data.shapes.num_images=600", "data.batch_size=64", "data.probe_size=120", "model.patch_size=8",
    "model.width=16", "model.depth=2", "model.heads=2", "trainer.max_epochs=2", "trainer.log_every_n_steps=3",
    "diagnostics.token_images=32", "diagnostics.probe_steps=10", "diagnostics.coherence=[]",
]


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def event_accumulator(path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


# ---- construction and configuration ----------------------------------------------------------


def test_the_default_is_the_csv_logger_alone(tmp_path):
    config = wb.make_config("supervised")
    assert config.trainer.loggers == ["csv"]
    loggers = build_loggers(config, tmp_path / "run")
    assert len(loggers) == 1 and isinstance(loggers[0], AtomicCSVLogger)
    assert Path(loggers[0].log_dir) == tmp_path / "run"  # metrics.csv stays at the run's top level
    assert tracker_callbacks(loggers, tmp_path / "run") == []


def test_csv_comes_first_even_when_not_listed(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    config = wb.make_config("supervised", ["trainer.loggers=[tensorboard]"])
    loggers = build_loggers(config, tmp_path / "run")
    assert [type(lg) for lg in loggers] == [AtomicCSVLogger, TensorBoardLogger]
    assert Path(loggers[1].log_dir) == tmp_path / "run" / "tensorboard"
    (callback,) = tracker_callbacks(loggers, tmp_path / "run")
    assert isinstance(callback, TrackerDiagnostics) and callback.trackers == [loggers[1]]


@pytest.mark.parametrize("value", ["[csv,neptune]", "[tensorboard,tensorboard]", "[Tensorboard]"])
def test_unknown_or_repeated_names_are_config_errors(value):
    with pytest.raises(ConfigError) as info:
        wb.make_config("supervised", [f"trainer.loggers={value}"])
    assert info.value.field == "trainer.loggers"
    assert "csv, tensorboard, wandb, mlflow" in str(info.value)


@pytest.mark.parametrize("name", ["tensorboard", "wandb", "mlflow"])
def test_a_missing_package_is_named_before_anything_is_written(name, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, name, None)  # `import name` fails, find_spec(name) is None
    with pytest.raises(ConfigError) as info:
        wb.make_config("supervised", [f"trainer.loggers=[csv,{name}]"])
    assert info.value.field == "trainer.loggers" and f"pip install {name}" in str(info.value)
    # wb.fit validates first: no run directory, no data
    with pytest.raises(ConfigError, match=f"pip install {name}"):
        wb.fit(preset="supervised", overrides=SMALL + [f"runs_dir={tmp_path / 'runs'}", f"trainer.loggers=[{name}]"],
               cache_dir=tmp_path / "data")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


def test_build_loggers_names_the_package_when_its_import_fails(monkeypatch, tmp_path):
    # a package that is found but does not import (a broken install): build_loggers imports it itself
    config = wb.make_config("supervised", ["trainer.loggers=[csv,tensorboard]"])
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: object())
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        build_loggers(config, tmp_path / "run")


def test_loggers_do_not_split_an_experiment():
    from workbench.config import PLACEMENT_FIELDS, changed_fields

    a = wb.make_config("supervised")
    b = wb.make_config("supervised", ["trainer.loggers=[csv,tensorboard]"])
    assert changed_fields(a, b) == ["trainer.loggers"] and changed_fields(a, b, ignore=PLACEMENT_FIELDS) == []


# ---- the pieces of the diagnostics forwarding, by hand ---------------------------------------


def test_heatmap_image_by_hand():
    # Viridis (plotly's 10 stops): minimum #440154, maximum #fde725; the middle value sits halfway
    # between stops 4 (#26828e) and 5 (#1f9e89): (34.5, 144, 139.5), rounded half to even
    low, high, middle, grey = (68, 1, 84), (253, 231, 37), (34, 144, 140), (128, 128, 128)
    image = heatmap_image(np.array([[0.0, 2.0], [1.0, np.nan]]), cell=3)
    assert image.shape == (6, 6, 3) and image.dtype == np.uint8
    for (r, c), colour in {(0, 0): low, (0, 1): high, (1, 0): middle, (1, 1): grey}.items():
        block = image[3 * r: 3 * r + 3, 3 * c: 3 * c + 3].reshape(-1, 3)
        assert (block == colour).all(), (r, c, block[0])
    reversed_ = heatmap_image(np.array([[0.0, 2.0]]), cell=1, reverse=True)
    assert reversed_[0, 0].tolist() == list(high) and reversed_[0, 1].tolist() == list(low)
    assert (heatmap_image(np.full((2, 2), 5.0), cell=1) == middle).all()  # a constant grid: the middle colour
    with pytest.raises(ValueError):
        heatmap_image(np.zeros(3))
    with pytest.raises(ValueError):
        heatmap_image(np.zeros((2, 2)), cell=0)


def diagnostics_rows(epochs=(0,)):
    rows = []
    for epoch in epochs:
        for layer in (0, 1, 2):
            rows += [
                {"epoch": epoch, "layer": layer, "pool": "mean", "metric": "rankme", "value": 10.0 * layer + epoch},
                {"epoch": epoch, "layer": layer, "pool": "mean", "metric": "linear_acc", "value": 0.25 * layer},
                {"epoch": epoch, "layer": layer, "pool": "mean", "metric": "cka/0", "value": 1.0},
            ]
        rows.append({"epoch": epoch, "layer": 1, "pool": "cls", "metric": "coherence/shape|color/cosine", "value": 0.5})
    return pd.DataFrame(rows, columns=["epoch", "layer", "pool", "metric", "value"])


def test_grid_table_and_names_by_hand():
    rows = diagnostics_rows(epochs=(0, 3))
    grid = layer_epoch_grid(rows, "rankme", "mean")
    assert list(grid.index) == [2, 1, 0] and list(grid.columns) == [0, 3]  # deepest layer on top
    assert grid.to_numpy().tolist() == [[20.0, 23.0], [10.0, 13.0], [0.0, 3.0]]
    table = layer_table(rows[rows["epoch"] == 3], "mean")
    assert list(table.columns) == ["rankme", "linear_acc"] and list(table.index) == [0, 1, 2]
    assert markdown_table(table) == ("| layer | rankme | linear_acc |\n|---|---|---|\n"
                                     "| 0 | 3 | 0 |\n| 1 | 13 | 0.25 |\n| 2 | 23 | 0.5 |")
    assert scalar_tag("rankme", "mean", 3) == "diagnostics/rankme/mean/layer_03"
    assert scalar_tag("coherence/shape|color/cosine", "cls", 12) == "diagnostics/coherence/shape-color/cosine/cls/layer_12"


class Recorder:
    """Stands in for a tracker of a kind the callback has no special case for: scalars and parameters."""

    def __init__(self):
        self.metrics, self.params = [], []

    def log_metrics(self, metrics, step=None):
        self.metrics.append((step, dict(metrics)))

    def log_hyperparams(self, params):
        self.params.append(dict(params))


def test_the_callback_forwards_each_pass_once_and_skips_earlier_passes_on_resume(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    diagnostics_rows(epochs=(0,)).to_csv(run_dir / "diagnostics.csv", index=False)
    board, recorder = TensorBoardLogger(run_dir, name="tensorboard", version=""), Recorder()
    callback = TrackerDiagnostics(run_dir, [board, recorder], cell=4)
    trainer = SimpleNamespace(is_global_zero=True, global_step=0, ckpt_path=None)
    config = wb.make_config("supervised", ["model.depth=2"])
    callback.on_fit_start(trainer, SimpleNamespace(config=config))
    assert recorder.params[0]["model.depth"] == 2 and recorder.params[0]["optim.betas"] == "[0.9, 0.999]"
    diagnostics_rows(epochs=(0, 1)).to_csv(run_dir / "diagnostics.csv", index=False)  # the next pass
    trainer.global_step = 7
    callback.on_train_epoch_end(trainer, None)
    callback.on_train_end(trainer, None)  # nothing new: nothing sent
    assert [step for step, _ in recorder.metrics] == [0, 7]
    step, scalars = recorder.metrics[1]
    assert scalars["diagnostics/rankme/mean/layer_02"] == 21.0 and scalars["diagnostics/epoch"] == 1.0
    assert scalars["diagnostics/coherence/shape-color/cosine/cls/layer_01"] == 0.5
    assert not any("cka" in key for key in scalars)  # CKA is a matrix: in the table, not a scalar
    board.finalize("success")

    acc = event_accumulator(run_dir / "tensorboard")
    events = acc.Scalars("diagnostics/rankme/mean/layer_01")
    assert [(e.step, e.value) for e in events] == [(0, 10.0), (7, 11.0)]
    images = acc.Images("diagnostics_heatmap/rankme/mean")
    assert [(i.step, i.height, i.width) for i in images] == [(0, 3 * 4, 1 * 4), (7, 3 * 4, 2 * 4)]
    assert "diagnostics_table/mean/text_summary" in acc.Tags()["tensors"]

    resumed, later = Recorder(), SimpleNamespace(is_global_zero=True, global_step=7, ckpt_path="last.ckpt")
    TrackerDiagnostics(run_dir, [resumed]).on_fit_start(later, None)
    assert resumed.metrics == []  # the passes in the file were sent by the run before the resume

    other_rank = Recorder()
    TrackerDiagnostics(run_dir, [other_rank]).on_fit_start(SimpleNamespace(is_global_zero=False), None)
    assert other_rank.metrics == [] and other_rank.params == []


# ---- one real run with every installed tracker -------------------------------------------------


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """A 2-epoch run with TensorBoard, plus W&B (offline) and MLflow (local file store) when installed."""
    root = tmp_path_factory.mktemp("tracked")
    names = ["csv", "tensorboard", *(n for n in ("wandb", "mlflow") if installed(n))]
    run = wb.fit(preset="supervised", overrides=SMALL + [f"runs_dir={root / 'runs'}", "name=tracked",
                                                         f"trainer.loggers=[{','.join(names)}]"],
                 cache_dir=root / "data")
    yield run
    shutil.rmtree(root, ignore_errors=True)


def test_tensorboard_holds_the_values_of_metrics_csv(tracked_run):
    run = tracked_run
    assert run.summary["status"] == "completed" and (run.path / "metrics.csv").is_file()
    assert list((run.path / "tensorboard").glob("events.out.tfevents.*")), "no event file"
    acc = event_accumulator(run.path / "tensorboard")
    metrics = run.metrics
    columns = [c for c in metrics.columns if c not in ("epoch", "step")]
    assert {"train/loss", "val/loss", "test/loss"} <= set(columns)
    for column in columns:
        logged = metrics[["step", column]].dropna()
        expected = [(int(s), np.float32(v)) for s, v in zip(logged["step"], logged[column])]
        # TensorBoard stores float32: the csv's value (a float32 logged as a double) exactly
        got = [(e.step, np.float32(e.value)) for e in acc.Scalars(column)]
        assert got == expected, column


def test_tensorboard_holds_every_diagnostics_pass(tracked_run):
    run = tracked_run
    acc = event_accumulator(run.path / "tensorboard")
    table = run.diagnostics
    epochs = sorted(table["epoch"].unique())
    assert epochs == [0, 2]  # before training and after the last epoch (diagnostics.every_n_epochs = 0)
    scalars = set(acc.Tags()["scalars"])
    for row in table[~table["metric"].str.startswith("cka/")].itertuples():
        tag = scalar_tag(row.metric, row.pool, row.layer)
        assert tag in scalars, tag
        values = [np.float32(e.value) for e in acc.Scalars(tag)]
        assert values[epochs.index(row.epoch)] == np.float32(row.value), tag
    steps = [e.step for e in acc.Scalars("diagnostics/epoch")]
    assert steps[0] == 0 and steps == sorted(steps) and [e.value for e in acc.Scalars("diagnostics/epoch")] == epochs
    layers = table[(table["pool"] == "mean")]["layer"].nunique()
    last = acc.Images("diagnostics_heatmap/rankme/mean")[-1]
    assert (last.height, last.width) == (layers * 16, len(epochs) * 16)
    assert "diagnostics_table/mean/text_summary" in acc.Tags()["tensors"]


@pytest.mark.skipif(not installed("wandb"), reason="wandb is not installed (an optional extra: pip install wandb)")
def test_wandb_writes_an_offline_run_under_the_run_directory(tracked_run):
    (offline,) = (tracked_run.path / "wandb").glob("offline-run-*")
    assert list(offline.glob("run-*.wandb")), "no W&B run file"
    media = offline / "files" / "media"
    assert list((media / "images" / "diagnostics_heatmap" / "rankme").glob("mean_*.png"))
    assert list((media / "table" / "diagnostics").glob("*.table.json"))


@pytest.mark.skipif(not installed("mlflow"), reason="mlflow is not installed (an optional extra: pip install mlflow)")
def test_mlflow_file_store_holds_the_metrics_and_diagnostics(tracked_run):
    from mlflow.tracking import MlflowClient

    run = tracked_run
    client = MlflowClient(tracking_uri=(run.path / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("workbench")
    (record,) = client.search_runs([experiment.experiment_id])
    assert record.info.run_name == run.name and record.data.params["model.depth"] == "2"
    logged = run.metrics[["step", "train/loss"]].dropna()
    history = client.get_metric_history(record.info.run_id, "train/loss")
    assert [(h.step, np.float32(h.value)) for h in history] == [
        (int(s), np.float32(v)) for s, v in zip(logged["step"], logged["train/loss"])]
    artifacts = {a.path for a in client.list_artifacts(record.info.run_id, "diagnostics")}
    assert "diagnostics/epoch=000.json" in artifacts and "diagnostics/heatmap_rankme_mean_epoch=002.png" in artifacts
