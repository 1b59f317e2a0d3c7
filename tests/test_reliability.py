"""Reliability: non-finite losses, exact resume, determinism, atomic writes and
checkpoints that load with ``weights_only=True``. Tiny runs on CPU: 324 training images in batches
of 32 give 10 optimisation steps per epoch."""

from __future__ import annotations

import csv
import io
import os
import random
import re
import signal
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

import workbench as wb
from workbench.atomic import atomic_write_text
from workbench.errors import ConfigError, NonFiniteLossError
from workbench.training.csv_logger import AtomicExperimentWriter
from workbench.training.module import WorkbenchModule

STEPS_PER_EPOCH = 10
TINY = [
    "data.shapes.num_images=400", "data.batch_size=32", "model.width=16", "model.depth=2", "model.heads=2",
    "model.patch_size=8", "trainer.log_every_n_steps=2", "diagnostics.enabled=false",
]
# diagnostics on a small probe set, every epoch
DIAGNOSTICS = [
    "diagnostics.enabled=true", "diagnostics.every_n_epochs=1", "data.probe_size=48", "diagnostics.probe_steps=10",
    "diagnostics.token_images=16", "diagnostics.knn_k=5",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("shapes-cache")


def tiny_fit(root: Path, cache: Path, preset: str, *overrides: str, callbacks=()) -> wb.Run:
    return wb.fit(preset=preset, overrides=TINY + list(overrides) + [f"runs_dir={root}"], cache_dir=cache,
                  callbacks=callbacks)


def all_finite(tree) -> bool:
    if torch.is_tensor(tree):
        return not tree.is_floating_point() or bool(torch.isfinite(tree).all())
    if isinstance(tree, dict):
        return all(all_finite(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return all(all_finite(v) for v in tree)
    return True


# ---- 2. non-finite loss ------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:The number of training batches")
def test_nan_in_the_second_epoch_names_objective_term_and_step_and_keeps_the_epoch_one_checkpoint(
        tmp_path, cache, monkeypatch):
    from workbench.objectives.supervised import SupervisedObjective

    bad_step = STEPS_PER_EPOCH + 7
    original = SupervisedObjective.forward

    def poisoned(self, inputs):
        out = original(self, inputs)
        if inputs.step == bad_step:
            out.terms["ce"] = out.terms["ce"] * float("nan")
        return out

    monkeypatch.setattr(SupervisedObjective, "forward", poisoned)
    # The finiteness check runs at logging intervals and at the epoch's last batch: with
    # log_every_n_steps=50 the NaN weights train on for two more steps before it is caught.
    with pytest.raises(NonFiniteLossError, match=rf"step {bad_step}: objective 'supervised', term 'ce'"):
        tiny_fit(tmp_path, cache, "supervised", "trainer.max_epochs=3", "trainer.log_every_n_steps=50")
    (run_dir,) = tmp_path.iterdir()
    run = wb.load_run(run_dir)
    assert run.summary["status"] == "failed" and f"step {bad_step}" in run.summary["error"]

    checkpoint = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 0 and checkpoint["global_step"] == STEPS_PER_EPOCH  # the end of epoch 1
    assert checkpoint["state_dict"] and all_finite(checkpoint["state_dict"])
    assert all_finite(checkpoint["optimizer_states"])
    module = WorkbenchModule.load_from_checkpoint(run.checkpoint, map_location="cpu", weights_only=True)
    out = module(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert torch.isfinite(out.final).all()
    assert not list(run_dir.rglob("*.tmp"))
    # the epoch-1 validation row was written and survives the failure
    assert len(run.curve("val/supervised/acc")) == 1


# ---- 3. resume ---------------------------------------------------------------------------------


class Interrupted(Exception):
    """Stands for a kill: raised by a callback, after LastCheckpoint has written the epoch's checkpoint."""


class InterruptAt(L.Callback):
    def __init__(self, *, epoch_end: int | None = None, step: int | None = None):
        self.epoch_end, self.step = epoch_end, step

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch_end:
            raise Interrupted(f"after epoch {self.epoch_end + 1}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Interrupted(f"at step {self.step}")


RESUME_CASES = {
    # stopped at the end of epoch 2 of 3
    "supervised-after-epoch-2": ("supervised", [], dict(epoch_end=1)),
    # random views, EMA teacher, DINO centre and head, teacher-temperature schedule; stopped in the
    # middle of epoch 3: the rows logged after the checkpoint are dropped and trained again
    "dino-mid-epoch-3": ("dino", [], dict(step=2 * STEPS_PER_EPOCH + 5)),
    # random masks, an adaptive curriculum (state in the checkpoint), per-epoch diagnostics
    "mae-adaptive-diagnostics-after-epoch-2": (
        "mae",
        ["objectives.mae.params.mask_ratio={schedule: adaptive, start: 0.3, end: 0.9, step: 0.1, target: 100.0, "
         "metric: mae/mse, every: 4}", *DIAGNOSTICS],
        dict(epoch_end=1),
    ),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resumed_run_matches_the_uninterrupted_run(case, tmp_path, cache):
    preset, extra, where = RESUME_CASES[case]
    overrides = ["trainer.max_epochs=3", *extra]
    a = tiny_fit(tmp_path / "a", cache, preset, *overrides)
    with pytest.raises(Interrupted):
        tiny_fit(tmp_path / "b", cache, preset, *overrides, callbacks=[InterruptAt(**where)])
    (b_dir,) = (tmp_path / "b").iterdir()
    assert wb.load_run(b_dir).summary["status"] == "failed"
    stopped = wb.load_run(b_dir).metrics
    if "step" in where:  # rows of the interrupted epoch were flushed; the resume drops them
        assert (stopped["epoch"] == 2).any()

    b = wb.fit(resume=b_dir, cache_dir=cache)
    assert b.path == b_dir and sorted(p.name for p in (tmp_path / "b").iterdir()) == [b_dir.name]
    assert b.summary["status"] == "completed" and b.summary["resumed"] is True
    assert b.summary["steps"] == a.summary["steps"] == 3 * STEPS_PER_EPOCH

    ma, mb = a.metrics, b.metrics
    assert list(ma.columns) == list(mb.columns) and len(ma) == len(mb)
    third = ma["epoch"] == 2
    assert ma.loc[third, "train/loss"].notna().sum() == STEPS_PER_EPOCH // 2
    for column in ["train/loss"] + [c for c in ma.columns if c.startswith(("val/", "test/"))]:
        left, right = ma[column].to_numpy(), mb[column].to_numpy()
        assert np.array_equal(np.isnan(left), np.isnan(right)), column
        np.testing.assert_allclose(left[~np.isnan(left)], right[~np.isnan(right)], rtol=0, atol=1e-6, err_msg=column)
    # in fact the files are identical, byte for byte (every column, every epoch)
    assert (a.path / "metrics.csv").read_bytes() == (b.path / "metrics.csv").read_bytes()
    if (a.path / "diagnostics.csv").exists():
        assert sorted(a.diagnostics["epoch"].unique()) == [0, 1, 2, 3]
        assert (a.path / "diagnostics.csv").read_bytes() == (b.path / "diagnostics.csv").read_bytes()
    checkpoint_a = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
    checkpoint_b = torch.load(b.checkpoint, map_location="cpu", weights_only=True)
    assert checkpoint_a["schedules"] == checkpoint_b["schedules"]
    for key, value in checkpoint_a["state_dict"].items():
        assert torch.equal(value, checkpoint_b["state_dict"][key]), key


def test_resume_refuses_config_changes_and_non_runs(tmp_path, cache):
    run = tiny_fit(tmp_path, cache, "supervised", "trainer.max_epochs=1")
    with pytest.raises(ConfigError) as info:
        wb.fit(resume=run.path, overrides=["model.depth=3"], cache_dir=cache)
    assert info.value.field == "model.depth" and "trainer.max_epochs" in str(info.value)
    with pytest.raises(ConfigError, match="resume"):
        wb.fit(resume=tmp_path / "nowhere", cache_dir=cache)
    with pytest.raises(ConfigError, match="resume"):
        wb.fit(preset="supervised", resume=run.path, cache_dir=cache)
    with pytest.raises(ConfigError) as info:
        wb.fit(resume=run.path, overrides=["trainer.max_epochs=0"], cache_dir=cache)
    assert info.value.field == "trainer.max_epochs"
    assert sorted(p.name for p in tmp_path.iterdir()) == [run.name]
    assert run.summary["status"] == "completed"


def test_cli_resume_extends_a_finished_run_in_its_directory(tmp_path, cache, capsys, monkeypatch):
    from workbench.cli import main  # what `python -m workbench` runs (a subprocess costs 5 s of imports)

    run = tiny_fit(tmp_path / "runs", cache, "supervised", "trainer.max_epochs=1")
    before = run.metrics
    monkeypatch.chdir(tmp_path)
    # --data-dir: the test's shapes cache (generated once for the module)
    assert main(["fit", "--resume", str(run.path), "--data-dir", str(cache), "--set", "trainer.max_epochs=2"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(run.path)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [run.name]
    after = run.metrics
    assert run.config.trainer.max_epochs == 2 and run.summary["epochs"] == 2 and run.summary["resumed"] is True
    assert sorted(after.loc[after["val/loss"].notna(), "epoch"]) == [0, 1]
    assert after["test/loss"].notna().sum() == 1  # the first test row (after epoch 1) was dropped
    # the first epoch's rows are kept as they were
    for column in ("step", "train/loss", "val/loss"):
        assert after.loc[after["epoch"] == 0, column].equals(before.loc[before["epoch"] == 0, column]), column

    assert main(["fit", "--resume", str(run.path), "--preset", "dino"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["fit", "--resume", str(run.path), "--set", "optim.lr=0.1"]) == 2
    assert "optim.lr" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_checkpoint_is_a_clear_error_naming_the_file(damage, tmp_path, cache, capsys, monkeypatch):
    from workbench.analysis.readouts import objective_rankme
    from workbench.cli import main
    from workbench.errors import CheckpointError
    from workbench.training.checkpointing import load_module, read_checkpoint

    run = tiny_fit(tmp_path / "runs", cache, "supervised", "trainer.max_epochs=1")
    good = run.checkpoint.read_bytes()
    # garbage: bytes that are no checkpoint at all; truncated: the first half of a real checkpoint
    run.checkpoint.write_bytes(b"not a checkpoint\x00" * 64 if damage == "garbage" else good[: len(good) // 2])
    before = {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()}
    message = f"{run.checkpoint} is not a readable checkpoint"
    for load in (read_checkpoint, load_module):
        with pytest.raises(CheckpointError, match=re.escape(message)):
            load(run.checkpoint)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        objective_rankme(run)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        wb.fit(resume=run.path, overrides=["trainer.max_epochs=2"], cache_dir=cache)
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--resume", str(run.path), "--data-dir", str(cache), "--set", "trainer.max_epochs=2"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    # nothing in the run directory was touched by the refused resumes
    assert {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()} == before


def test_a_missing_checkpoint_is_a_clear_error(tmp_path):
    from workbench.errors import CheckpointError
    from workbench.training.checkpointing import read_checkpoint

    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "last.ckpt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.ckpt")  # readable, but not a workbench checkpoint
    with pytest.raises(CheckpointError, match="no 'state_dict'"):
        read_checkpoint(tmp_path / "other.ckpt")


# ---- 4. determinism ----------------------------------------------------------------------------


def test_same_config_and_seed_give_identical_files(tmp_path, cache):
    overrides = ["trainer.max_epochs=2", "objectives.sup.kind=supervised", *DIAGNOSTICS]
    first = tiny_fit(tmp_path / "1", cache, "lejepa", *overrides)
    second = tiny_fit(tmp_path / "2", cache, "lejepa", *overrides)
    for name in ("metrics.csv", "diagnostics.csv"):
        assert (first.path / name).read_bytes() == (second.path / name).read_bytes(), name
    assert len(first.diagnostics) > 0 and sorted(first.diagnostics["epoch"].unique()) == [0, 1, 2]
    for epoch in (0, 1, 2):
        e1, e2 = first.embeddings(epoch), second.embeddings(epoch)
        assert e1.keys() == e2.keys() and all(np.array_equal(e1[k], e2[k]) for k in e1)
    c1, c2 = first.config, second.config
    c2.name, c2.runs_dir = c1.name, c1.runs_dir  # generated names carry the start time
    assert c1 == c2
    # summary.json: only the wall-clock timings (and the name) differ between the two runs
    s1, s2 = first.summary, second.summary
    timing = {"name", "wall_s", "diagnostics_s"}
    assert {k: v for k, v in s1.items() if k not in timing} == {k: v for k, v in s2.items() if k not in timing}
    for name in ("checkpoints/last.ckpt",):
        k1 = torch.load(first.path / name, map_location="cpu", weights_only=True)["state_dict"]
        k2 = torch.load(second.path / name, map_location="cpu", weights_only=True)["state_dict"]
        assert all(torch.equal(v, k2[k]) for k, v in k1.items())


# ---- 5. atomic writes --------------------------------------------------------------------------


class FailingFile:
    """A file that accepts ``limit`` bytes, writes part of the next chunk, then fails (a full disk)."""

    def __init__(self, file, limit: int):
        self._file, self._left = file, limit

    def write(self, data):
        if len(data) > self._left:
            self._file.write(data[: self._left])
            self._file.flush()
            raise OSError(28, "No space left on device (simulated)")
        self._left -= len(data)
        return self._file.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._file.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._file, name)


def fail_writes_after(monkeypatch, limit: int) -> None:
    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: FailingFile(real(fd, *a, **k), limit))


def write_yaml(path: Path, version: int) -> None:
    from workbench.runs import write_config

    write_config(path.parent, wb.RunConfig(name=f"v{version}", seed=version))


def write_summary(path: Path, version: int) -> None:
    from workbench.runs import write_summary as write

    write(path.parent, {"status": "completed", "version": version, "headline": {f"m{i}": i * version for i in range(50)}})


def write_diagnostics(path: Path, version: int) -> None:
    from workbench.training.diagnostics_callback import append_rows

    append_rows(path, [{"epoch": version, "layer": l, "pool": "cls", "metric": "rankme", "value": l / 3} for l in range(50)])


def write_embeddings(path: Path, version: int) -> None:
    from workbench.data.base import ImageSet
    from workbench.training.diagnostics_callback import DiagnosticsCallback

    callback = DiagnosticsCallback(path.parent.parent, wb.RunConfig().diagnostics)
    g = torch.Generator().manual_seed(version)
    pooled = {(l, "cls"): torch.randn(64, 16, generator=g) for l in range(3)}
    probe = ImageSet(torch.zeros(64, 3, 8, 8, dtype=torch.uint8), torch.arange(64) % 4)
    callback._save_embeddings(0, pooled, probe)


def write_metrics(path: Path, version: int) -> None:
    writer = AtomicExperimentWriter(str(path.parent))
    for step in range(20):
        writer.log_metrics({"train/loss": version + step / 7, f"val/v{version}": step}, step)
    writer.save()


def write_shapes_cache(path: Path, version: int) -> None:
    from workbench.data.shapes import ShapesParams, _write_cache

    _write_cache(path, ShapesParams(num_images=10), torch.full((10, 3, 4, 4), version, dtype=torch.uint8),
                 torch.zeros(10, 2))


WRITERS = {
    "config.yaml": (write_yaml, "config.yaml"),
    "summary.json": (write_summary, "summary.json"),
    "diagnostics.csv": (write_diagnostics, "diagnostics.csv"),
    "embeddings.npz": (write_embeddings, "embeddings/epoch=000.npz"),
    "metrics.csv": (write_metrics, "metrics.csv"),
    "shapes-cache": (write_shapes_cache, "shapes.pt"),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_write_interrupted_midway_leaves_the_previous_complete_file(writer, tmp_path, monkeypatch):
    write, name = WRITERS[writer]
    path = tmp_path / name
    write(path, 1)
    write(path, 2)  # the csv writers append: the file now holds both versions' rows
    old = path.read_bytes()
    assert len(old) > 300
    with monkeypatch.context() as m:
        fail_writes_after(m, limit=len(old) // 2)  # half of the next version, then a full disk
        if writer == "shapes-cache":  # the cache is an optimisation: a failed write warns and goes on
            with pytest.warns(UserWarning, match="could not write the shapes cache"):
                write(path, 3)
        else:
            with pytest.raises(OSError, match="simulated"):
                write(path, 3)
    assert path.read_bytes() == old
    write(path, 3)  # and the next write succeeds
    assert path.read_bytes() != old
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def kill_while_writing(child, check, errors: Path, rounds: int = 12, seed: int = 0) -> None:
    """Fork a process that runs ``child`` (a writing loop), SIGKILL it at a random moment, ``check``.
    A child that fails writes its traceback to ``errors``."""
    rng = random.Random(seed)
    for _ in range(rounds):
        pid = os.fork()
        if pid == 0:  # the child never returns into pytest
            try:
                child()
            except BaseException:
                import traceback

                errors.write_text(traceback.format_exc())
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.005, 0.06))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        assert not errors.exists(), errors.read_text()
        check()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sigkill_during_atomic_writes_leaves_the_old_or_the_new_text(tmp_path):
    path = tmp_path / "config.yaml"
    versions = ["".join(f"{v}: {i}\n" for i in range(150_000)) for v in "ab"]  # ~1.5 MB each
    atomic_write_text(path, versions[0])

    def child():
        for i in range(10_000):
            atomic_write_text(path, versions[i % 2])

    seen = set()

    def check():
        text = path.read_text()
        assert text in versions, f"a torn file of {len(text)} characters"
        seen.add(text[0])

    kill_while_writing(child, check, tmp_path.parent / f"{tmp_path.name}-child-error.txt")
    assert seen  # the file was always one complete version
    # ... although kills did land mid-write: a SIGKILLed writer cannot remove its temporary file
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".config.yaml.") and p.name.endswith(".tmp")]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sigkill_during_metrics_flushes_leaves_a_complete_table(tmp_path):
    """The metrics writer flushes the whole table atomically, and a new writer continues it."""
    path = tmp_path / "metrics.csv"

    def child():
        writer = AtomicExperimentWriter(str(tmp_path))  # continues the rows already in the file
        with open(path, newline="") if path.exists() else io.StringIO() as f:
            start = len(list(csv.DictReader(f)))
        for i in range(start, start + 100_000):
            row = {"train/loss": i / 3, "twice": 2 * i}
            if i % 500 == 0:
                row[f"val/new{i}"] = i  # a new column: Lightning's writer rewrites its file in place here
            writer.log_metrics(row, step=i)
            if i % 20 == 19:
                writer.save()

    def check():
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        for i, row in enumerate(rows):
            assert int(row["step"]) == i and float(row["train/loss"]) == i / 3 and int(row["twice"]) == 2 * i, row
            assert None not in row.values(), f"row {i} is short"
        assert len(rows) % 20 == 0  # whole flushes only

    kill_while_writing(child, check, tmp_path.parent / f"{tmp_path.name}-child-error.txt")
    with open(path, newline="") as f:
        assert len(list(csv.DictReader(f))) > 0


# ---- 6. checkpoints with extra state load with weights_only=True -------------------------------

EXTRA_STATE = {
    "dino": ["trainer.max_steps=3"],
    "ijepa": ["trainer.max_steps=3"],
    "stepwise-latent-ladder": ["trainer.max_steps=4", "trainer.log_every_n_steps=1",
                               "objectives.ladder.params.mask_ratio={schedule: adaptive, start: 0.2, end: 0.8, "
                               "step: 0.2, target: 100.0, metric: ladder/l1_l1, every: 1}"],
}


@pytest.mark.parametrize("preset", list(EXTRA_STATE))
def test_checkpoint_with_extra_state_loads_with_weights_only(preset, tmp_path, cache):
    run = tiny_fit(tmp_path, cache, preset, *EXTRA_STATE[preset])
    checkpoint = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
    state = checkpoint["state_dict"]
    assert any(k.startswith("teacher.model.") for k in state)
    if preset == "dino":
        center = state["objectives.dino.criterion.center"]
        assert center.abs().sum() > 0  # updated by training
        assert any(k.startswith("objectives.dino.teacher_head.") for k in state)
    if preset == "stepwise-latent-ladder":
        level = checkpoint["schedules"]["objectives.ladder.params.mask_ratio"]["level"]
        assert level >= 2  # the curriculum moved

    module = WorkbenchModule.load_from_checkpoint(run.checkpoint, map_location="cpu", weights_only=True)
    loaded = module.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    assert {k: s.state_dict() for k, s in module.all_schedules().items()} == checkpoint["schedules"]
    out = module(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert torch.isfinite(out.final).all()
