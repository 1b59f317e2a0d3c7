"""Lightning DDP from the config: two CPU processes (gloo) train, and diagnostics are gathered.

``wb.fit`` with ``trainer.accelerator=cpu trainer.devices=2 trainer.strategy=ddp`` runs in a
subprocess (Lightning's launcher re-runs that script for rank 1). We check that

* training finished on both ranks with finite losses, into ONE run directory that both ranks
  return, and no process group is left alive after ``fit`` (both processes exit cleanly);
* every file of the run was written by rank 0 alone: the script records the target of every
  atomic rename (``os.replace``, how every file of a run directory is written) on each rank;
* ``diagnostics.csv`` has every (epoch, layer, pool, metric) once;
* its last epoch equals a single-process pass of the same callback over the same probe set with
  the model of ``checkpoints/last.ckpt``, run with one thread like the ranks. The two differ only
  in how the probe set is batched (each rank embeds half of it), which can move float32
  embeddings by a few ulp; we allow ``rtol = 1e-4, atol = 1e-5`` on every metric (accuracies and
  counts are, in practice, equal). A normalised coherence is a ratio whose denominator (its
  ceiling) can be any small number, so it is compared through its numerator
  (``normalised x ceiling``), and its NaN (ceiling not positive) only where the ceiling is not
  within the tolerance of 0.

The probe set is uneven (101 images: shares of 51 and 50, padded), capped by
``diagnostics.max_samples=60`` (the views and kNN see 60 images) and the views are made in
chunks of 40 so that both ranks make some; the token sample (64 images) reaches past rank 0's
share. The helpers themselves (``gather_rows``, ``local_only``) are tested with two spawned
processes, like the losses in ``test_distributed.py``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
from spawned import free_port, run_spawned

import workbench as wb
from workbench.errors import ConfigError

needs_gloo = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="needs torch.distributed with gloo")

OVERRIDES = [
    "data.shapes.num_images=1280", "data.batch_size=32", "data.probe_size=101", "model.patch_size=8",
    "model.width=32", "model.depth=2", "model.heads=4", "trainer.max_epochs=1", "trainer.log_every_n_steps=4",
    "diagnostics.token_images=64", "diagnostics.max_samples=60", "diagnostics.probe_steps=20",
    "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
]
VIEW_CHUNK = 40
# a guard against a deadlock, not a time budget: a few seconds on an idle machine, minutes when
# the CPU is shared by many jobs
DEADLINE = 300.0
TOLERANCE = dict(rtol=1e-4, atol=1e-5)

SCRIPT = """
import json, os, sys
import torch

torch.set_num_threads(1)  # two processes on a small shared machine
written = []
_replace = os.replace

def replace(src, dst, *args, **kwargs):  # every run file is written through an atomic rename
    written.append(os.path.abspath(os.fspath(dst)))
    return _replace(src, dst, *args, **kwargs)

os.replace = replace

import workbench as wb
from workbench.training.diagnostics_callback import DiagnosticsCallback

DiagnosticsCallback.VIEW_CHUNK = {chunk}
root = sys.argv[1]
run = wb.fit(preset="supervised", overrides={overrides!r} + [f"runs_dir={{root}}/runs"], cache_dir=f"{{root}}/data")
rank = int(os.environ.get("LOCAL_RANK", "0"))
with open(os.path.join(root, f"rank{{rank}}.json"), "w") as f:
    json.dump({{"run": str(run.path), "written": written, "group_left": torch.distributed.is_initialized()}}, f)
"""


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    script = root / "fit_ddp.py"
    script.write_text(SCRIPT.format(chunk=VIEW_CHUNK, overrides=OVERRIDES))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE",
                                                             "WORKBENCH_RUN_DIR")}
    start = time.monotonic()
    try:
        out = subprocess.run([sys.executable, str(script), str(root)], cwd=root, env=env, capture_output=True,
                             text=True, timeout=DEADLINE)
    except subprocess.TimeoutExpired as exc:  # never hang the suite on a deadlock
        pytest.fail(f"the two-process fit did not finish in {exc.timeout} s:\n{(exc.stderr or '')[-3000:]}")
    assert out.returncode == 0, out.stderr[-5000:]
    ranks = [json.loads((root / f"rank{r}.json").read_text()) for r in range(2)]
    return SimpleNamespace(root=root, ranks=ranks, seconds=time.monotonic() - start)


@needs_gloo
def test_two_ranks_train_into_one_run_directory_written_by_rank_zero_only(ddp_run):
    runs = [p for p in (ddp_run.root / "runs").iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1, runs
    run = wb.Run(runs[0])
    assert [Path(r["run"]) for r in ddp_run.ranks] == [run.path.resolve()] * 2
    # fit tears down the process group it started: threads of a live gloo group abort the
    # interpreter at exit now and then ("terminate called without an active exception")
    assert [r["group_left"] for r in ddp_run.ranks] == [False, False]
    assert run.summary["status"] == "completed"
    assert run.config.trainer.devices == 2 and run.config.trainer.strategy == "ddp"
    losses = run.metrics["train/loss"].dropna()
    assert len(losses) > 0 and np.isfinite(losses.to_numpy()).all()
    # every file of the run came from rank 0; rank 1 wrote nothing there
    inside = [[p for p in r["written"] if p.startswith(str(run.path.resolve()))] for r in ddp_run.ranks]
    assert inside[1] == [], inside[1]
    for name in ("diagnostics.csv", "metrics.csv", "summary.json", "config.yaml", "checkpoints/last.ckpt",
                 "embeddings/epoch=000.npz", "embeddings/probe.npz"):
        assert str(run.path.resolve() / name) in inside[0], name
    assert not list(run.path.rglob("*.tmp"))


@needs_gloo
def test_diagnostics_are_written_once_with_the_whole_probe_set(ddp_run):
    run = wb.Run(next(p for p in (ddp_run.root / "runs").iterdir() if not p.name.startswith(".")))
    table = run.diagnostics
    assert sorted(table["epoch"].unique()) == [0, 1]
    assert not table.duplicated(["epoch", "layer", "pool", "metric"]).any()
    cls_final = table[(table["epoch"] == 1) & (table["pool"] == "cls")]
    assert {"knn_acc", "uniformity", "lidar", "invariance", "cka/2"} <= set(cls_final["metric"])
    data = run.embeddings(1)
    assert data["l2_cls"].shape == (101, 32)  # all probe rows, the padding cut off
    np.testing.assert_array_equal(data["ids"], np.arange(101))


@needs_gloo
def test_ddp_diagnostics_equal_a_single_process_pass_on_the_checkpoint(ddp_run, monkeypatch, tmp_path):
    from workbench.data.datamodule import TensorDataModule
    from workbench.training.diagnostics_callback import DiagnosticsCallback
    from workbench.training.module import WorkbenchModule

    run = wb.Run(next(p for p in (ddp_run.root / "runs").iterdir() if not p.name.startswith(".")))
    config = run.config
    datamodule = TensorDataModule(config.data, cache_dir=ddp_run.root / "data", order_seed=config.seed).prepare()
    module = WorkbenchModule(config, datamodule.info)
    state = torch.load(run.path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
    monkeypatch.setattr(DiagnosticsCallback, "VIEW_CHUNK", VIEW_CHUNK)
    trainer = SimpleNamespace(datamodule=datamodule, is_global_zero=True)
    # one thread, like the ranks (SCRIPT): the thread count changes float32 summation order. Measured
    # on this pass (checkpoints of single-process runs of OVERRIDES, seeds 0-4; the probe set embedded
    # whole vs in the ranks' halves): with one thread on both sides every value was bitwise equal;
    # with 2 threads against 1 the worst |difference| was 0.42 of TOLERANCE (a factor probe), except
    # a normalised coherence whose ceiling was 2.0e-5: 6089 against 6409 (hence its numerator below,
    # whose worst difference was then 0.12 of TOLERANCE)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        DiagnosticsCallback(tmp_path, config.diagnostics, config.seed).run(trainer, module, 1)
    finally:
        torch.set_num_threads(threads)

    single = pd.read_csv(tmp_path / "diagnostics.csv")
    ddp = run.diagnostics
    ddp = ddp[ddp["epoch"] == 1]
    key = ["epoch", "layer", "pool", "metric"]
    merged = single.merge(ddp, on=key, suffixes=("_single", "_ddp"), how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
    # normalised = across / ceiling (NaN where ceiling <= 0): compare the well-conditioned numerator
    normalised = merged["metric"].str.endswith("/normalised").to_numpy()
    ceilings = merged.assign(metric=merged["metric"].str.replace("/normalised$", "/ceiling", regex=True))
    ceilings = ceilings[key].merge(merged, on=key, how="left")
    a, b = merged["value_single"].to_numpy(float), merged["value_ddp"].to_numpy(float)
    ca, cb = ceilings["value_single"].to_numpy(float), ceilings["value_ddp"].to_numpy(float)
    a, b = np.where(normalised, a * ca, a), np.where(normalised, b * cb, b)
    # a ceiling within the tolerance of 0 may be positive on one side and not on the other
    near_zero = normalised & np.isclose(ca, 0.0, **TOLERANCE) & np.isclose(cb, 0.0, **TOLERANCE)
    assert ((np.isnan(a) == np.isnan(b)) | near_zero).all(), merged[(np.isnan(a) != np.isnan(b)) & ~near_zero]
    close = np.isclose(a, b, equal_nan=True, **TOLERANCE) | (near_zero & (np.isnan(a) | np.isnan(b)))
    assert close.all(), merged[~close]


# ------------------------------------------------------------------------------- the helpers, 2 ranks

def _helpers_worker(rank: int, port: int) -> None:
    from workbench.diagnostics import sigreg_statistic

    torch.set_num_threads(1)
    z = torch.randn(40, 5, generator=torch.Generator().manual_seed(3))
    plain = sigreg_statistic(z, num_directions=8, generator=torch.Generator().manual_seed(1))  # no group yet
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=60))
    try:
        from workbench import distributed as D

        rows = torch.arange(6, dtype=torch.float32).reshape(3, 2) + 100 * rank
        gathered = D.gather_rows(rows)
        if rank == 0:
            expected = torch.cat([torch.arange(6.0).reshape(3, 2), torch.arange(6.0).reshape(3, 2) + 100])
            assert torch.equal(gathered, expected), gathered
        else:
            assert gathered is None
        if rank == 0:  # rank 0 alone: no collective may be launched, or this would wait forever
            with D.local_only():
                assert not D.is_distributed() and D.world_size() == 1 and D.rank() == 0
                alone = sigreg_statistic(z, num_directions=8, generator=torch.Generator().manual_seed(1))
            assert D.is_distributed() and D.world_size() == 2 and D.rank() == 0  # restored after the block
            # the statistic of the data this process holds, exactly as without a process group
            assert torch.equal(alone, plain) and math.isfinite(float(alone))
        D.barrier()  # rank 1 waits here while rank 0 works alone
    finally:
        dist.destroy_process_group()


@needs_gloo
def test_gather_rows_and_local_only_with_two_processes():
    run_spawned(_helpers_worker, (free_port(),), 2, DEADLINE, "the helper workers")


def test_gather_rows_and_local_only_on_a_single_process():
    from workbench import distributed as D

    t = torch.randn(3, 2)
    assert D.gather_rows(t) is t
    D.barrier()  # nothing to wait for
    with D.local_only():
        assert not D.is_distributed() and D.rank() == 0 and D.world_size() == 1
        with D.local_only():  # nests
            assert D.world_size() == 1
    assert D.world_size() == 1


def test_launched_rank_reads_the_launchers_environment(monkeypatch):
    from workbench.distributed import launched_rank

    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    assert launched_rank() == 0
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "0")
    assert launched_rank() == 0
    monkeypatch.setenv("LOCAL_RANK", "1")  # what Lightning's launcher gives the process of rank 1
    assert launched_rank() == 1
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "2")  # local rank 0 of another node is not rank 0
    assert launched_rank() == 2


def test_a_rank_started_outside_lightning_needs_a_run_name(monkeypatch, tmp_path):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("WORKBENCH_RUN_DIR", raising=False)
    with pytest.raises(ConfigError, match="name"):
        wb.fit(preset="supervised", overrides=[f"runs_dir={tmp_path}"], cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written
