"""Sweeps: presets x seeds, each run in its own process, loaded back for comparison."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import workbench as wb
from workbench.errors import ConfigError
from workbench.training.sweep import SweepError, load_sweep, parse_seeds, plan, slurm_script, sweep

TINY = [
    "data.shapes.num_images=300", "data.batch_size=32", "data.probe_size=48", "model.patch_size=8",
    "model.width=16", "model.depth=2", "model.heads=2", "trainer.max_epochs=1", "diagnostics.token_images=16",
    "diagnostics.probe_steps=5", "views.local_crops=2", "trainer.log_every_n_steps=2",
]
NO_DIAGNOSTICS = [*TINY, "diagnostics.enabled=false"]


@pytest.fixture(scope="module")
def two_by_two(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # the jobs cache the generated data under ./data
        runs = sweep(["supervised", "lejepa"], [0, 1], TINY, jobs=2, runs_dir="runs", name="grid", echo=lambda _: None)
    return root / "runs" / "grid", runs


def test_two_presets_two_seeds_in_parallel(two_by_two):
    root, runs = two_by_two
    assert [r.name for r in runs] == ["supervised-seed0", "supervised-seed1", "lejepa-seed0", "lejepa-seed1"]
    for run, (preset, seed) in zip(runs, [("supervised", 0), ("supervised", 1), ("lejepa", 0), ("lejepa", 1)]):
        assert run.path.parent == root and run.summary["status"] == "completed"
        assert run.config.seed == seed and run.config.preset == preset
        assert json.loads((root / "logs" / f"{run.name}.json").read_text())["returncode"] == 0
    manifest = json.loads((root / "sweep.json").read_text())
    assert [j["name"] for j in manifest["jobs"]] == [r.name for r in runs]
    # Different seeds give different training curves; the data split is the same.
    a, b = (r.metrics["train/loss"].dropna().to_numpy() for r in runs[:2])
    assert len(a) == len(b) and (a != b).any()


def test_sweep_runs_load_into_compare_runs(two_by_two):
    root, runs = two_by_two
    assert [r.name for r in load_sweep(root)] == [r.name for r in runs]
    table = wb.compare_runs(load_sweep(root))
    assert set(table["run"]) == {r.name for r in runs}
    assert set(wb.compare_runs(root)["run"]) == {r.name for r in runs}  # the directory itself, too


def test_a_completed_run_is_kept_when_the_sweep_is_run_again(two_by_two, monkeypatch):
    root, runs = two_by_two
    monkeypatch.chdir(root.parent.parent)
    lines = []
    again = sweep(["supervised"], [0], TINY, runs_dir="runs", name="grid", echo=lines.append)
    assert [r.name for r in again] == ["supervised-seed0"] and lines == ["[0] supervised-seed0: already completed, kept"]


def test_a_completed_run_with_other_settings_is_reported_not_reused(two_by_two, monkeypatch):
    root, runs = two_by_two
    monkeypatch.chdir(root.parent.parent)
    lines = []
    with pytest.raises(SweepError) as caught:
        sweep(["supervised"], [0], [*TINY, "model.depth=3"], runs_dir="runs", name="grid", echo=lines.append)
    (failure,) = caught.value.failures
    assert failure["job"] == "supervised-seed0" and "other settings (model.depth)" in failure["tail"]
    assert lines == ["[0] supervised-seed0: FAILED (its run directory holds a run with other settings)"]
    assert runs[0].config.model.depth == 2  # left as it was


def test_a_failing_run_is_reported_and_the_others_finish(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Removing the supervised objective leaves the supervised preset with none (a config error in
    # that job); the lejepa preset has no such objective and trains normally.
    with pytest.raises(SweepError) as caught:
        sweep(["supervised", "lejepa"], [0], NO_DIAGNOSTICS + ["objectives.supervised=null"], jobs=2, runs_dir="runs",
              name="broken", echo=lambda _: None)
    error = caught.value
    assert [r.name for r in error.runs] == ["lejepa-seed0"] and error.runs[0].summary["status"] == "completed"
    (failure,) = error.failures
    assert failure["job"] == "supervised-seed0" and failure["returncode"] == 2
    message = str(error)
    assert "supervised-seed0" in message and "exit code 2" in message
    assert "at least one enabled objective" in message  # the last lines of the job's log
    assert not (tmp_path / "runs" / "broken" / "supervised-seed0").exists()  # invalid config: nothing written


def test_only_runs_the_selected_job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = sweep(["supervised", "lejepa"], "0,1", NO_DIAGNOSTICS, runs_dir="runs", name="array", only=[2],
                 echo=lambda _: None)
    assert [r.name for r in runs] == ["lejepa-seed0"]
    root = tmp_path / "runs" / "array"
    assert sorted(p.name for p in root.iterdir() if (p / "config.yaml").exists()) == ["lejepa-seed0"]
    assert len(json.loads((root / "sweep.json").read_text())["jobs"]) == 4  # the manifest lists the whole sweep
    with pytest.raises(ConfigError, match="--only"):
        sweep(["supervised"], [0], TINY, name="array", only=[1])  # one job: index 1 does not exist
    with pytest.raises(ConfigError, match="--name"):
        sweep(["supervised"], [0], TINY, only=[0])


def test_dry_run_prints_one_fit_command_per_job(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "workbench", "sweep", "--preset", "supervised", "--preset", "dino", "--seeds", "0-2",
         "--set", "trainer.max_epochs=2", "--runs-dir", str(tmp_path), "--name", "s", "--dry-run"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    assert len(out) == 6
    assert out[0] == (f"python -m workbench fit --preset supervised --set trainer.max_epochs=2 --set seed=0 "
                      f"--set name=supervised-seed0 --runs-dir {tmp_path / 's'}")
    assert out[5].startswith("python -m workbench fit --preset dino") and "seed=2" in out[5]
    assert not (tmp_path / "s").exists()  # a dry run writes nothing


def test_data_dir_reaches_every_job_and_the_slurm_tasks(tmp_path):
    _, jobs = plan(["supervised"], [0, 1], [], runs_dir=tmp_path, name="s", data_dir="/scratch/data")
    assert all(job.args[-2:] == ("--data-dir", "/scratch/data") for job in jobs)
    script = slurm_script(["supervised"], "0", [], "runs", "s", data_dir="/scratch/data")
    assert "--name s --data-dir /scratch/data --only" in script


def test_slurm_script_runs_index_i_of_the_same_sweep():
    script = slurm_script(["supervised", "dino"], "0,1,2", ["trainer.max_epochs=2"], "runs", "ablation")
    assert "#SBATCH --array=0-5" in script
    assert ("python -m workbench sweep --preset supervised --preset dino --seeds 0,1,2 --set trainer.max_epochs=2 "
            "--runs-dir runs --name ablation --only \"$SLURM_ARRAY_TASK_ID\"") in script
    assert "#   5: dino-seed2" in script


def test_seed_parsing_and_argument_errors():
    assert parse_seeds("0,1,2") == [0, 1, 2] and parse_seeds("0-3,7") == [0, 1, 2, 3, 7] and parse_seeds([4]) == [4]
    for bad in ("", "a", "1,1", "-1"):
        with pytest.raises(ConfigError, match="--seeds"):
            parse_seeds(bad)
    with pytest.raises(ConfigError, match="--preset"):
        plan(["nope"], [0])
    with pytest.raises(ConfigError, match="seed, name, runs_dir"):
        plan(["supervised"], [0], ["name=x"])
    with pytest.raises(ConfigError, match="--jobs"):
        sweep(["supervised"], [0], jobs=0)
