import subprocess
import sys

import pytest
import torch

import workbench as wb
from workbench.errors import ConfigError, DataError, NonFiniteLossError
from workbench.training.module import WorkbenchModule

TINY = [
    "data.shapes.num_images=400", "data.batch_size=32", "model.width=16", "model.depth=2", "model.heads=2",
    "trainer.max_epochs=2", "trainer.log_every_n_steps=2",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    return wb.fit(preset="supervised", overrides=TINY + [f"runs_dir={root / 'runs'}"], cache_dir=root / "data")


def test_run_directory_contract(run):
    for name in ("config.yaml", "metrics.csv", "summary.json", "checkpoints/last.ckpt"):
        assert (run.path / name).is_file(), name
    assert not list(run.path.rglob("*.tmp")), "no temporary files are left behind"
    assert run.summary["status"] == "completed"
    assert run.summary["epochs"] == 2 and run.summary["steps"] == 2 * (324 // 32)
    assert run.summary["device"] == "cpu" and run.summary["precision"] == "32-true"


def test_config_yaml_reproduces_the_config(run):
    config = run.config
    assert config.name == run.path.name and config.preset == "supervised"
    assert config.model.depth == 2 and config.trainer.max_epochs == 2
    assert wb.RunConfig.from_yaml(config.to_yaml()) == config


def test_metrics_hold_per_step_training_and_per_epoch_validation_and_test(run):
    m = run.metrics
    for column in ("train/loss", "train/supervised/ce", "train/supervised/acc", "train/lr",
                   "val/loss", "val/supervised/acc", "test/supervised/acc"):
        assert column in m, column
    assert len(run.curve("val/supervised/acc")) == 2  # one per epoch
    assert len(run.curve("train/loss")) == (2 * (324 // 32)) // 2  # every log_every_n_steps=2 steps
    assert run.curve("train/loss")["value"].notna().all()
    acc = run.summary["headline"]["test/supervised/acc"]
    assert 0.0 <= acc <= 1.0


def test_checkpoint_loads_with_weights_only(run):
    checkpoint = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["config"]["model"]["depth"] == 2
    module = WorkbenchModule.load_from_checkpoint(run.checkpoint, map_location="cpu", weights_only=True)
    out = module(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert len(out.layers) == 3 and out.final.shape == (2, 65, 16)


def test_list_runs_shows_the_run(run):
    table = wb.list_runs(run.path.parent)
    row = table[table["name"] == run.path.name].iloc[0]
    assert row["status"] == "completed" and row["preset"] == "supervised" and row["dataset"] == "shapes"


def test_invalid_config_writes_nothing(tmp_path):
    with pytest.raises(ConfigError, match="model.patch_size"):
        wb.fit(preset="supervised", overrides=TINY + ["model.patch_size=5", f"runs_dir={tmp_path / 'runs'}"],
               cache_dir=tmp_path / "data")
    assert not (tmp_path / "runs").exists()


def test_missing_data_writes_nothing(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        wb.fit(preset="supervised", overrides=["data.name=cifar10", f"data.root={tmp_path / 'nowhere'}",
                                               f"runs_dir={tmp_path / 'runs'}"])
    assert not (tmp_path / "runs").exists()


def test_non_finite_loss_names_objective_term_and_step(tmp_path, monkeypatch):
    from workbench.objectives.supervised import SupervisedObjective

    original = SupervisedObjective.forward

    def poisoned(self, inputs):
        out = original(self, inputs)
        if inputs.step == 3:
            out.terms["ce"] = out.terms["ce"] * float("nan")
        return out

    monkeypatch.setattr(SupervisedObjective, "forward", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"step 3: objective 'supervised', term 'ce'"):
        wb.fit(preset="supervised", overrides=TINY + [f"runs_dir={tmp_path / 'runs'}"], cache_dir=tmp_path / "data")
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert wb.load_run(run_dir).summary["status"] == "failed"


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_cli_fit_prints_the_run_directory_and_runs_lists_it(tmp_path):
    sets = [a for o in TINY + ["trainer.max_epochs=1"] for a in ("--set", o)]
    result = cli("fit", "--preset", "supervised", "--set", "data.name=shapes", *sets, "--runs-dir", "runs",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / result.stdout.strip().splitlines()[-1]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    listing = cli("runs", "--runs-dir", "runs", cwd=tmp_path)
    assert listing.returncode == 0 and run_dir.name in listing.stdout and "completed" in listing.stdout


def test_cli_reports_config_errors_without_a_traceback(tmp_path):
    result = cli("fit", "--set", "model.depht=3", cwd=tmp_path)
    assert result.returncode == 2
    assert "model.depht" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_cli_presets_lists_every_preset(tmp_path):
    result = cli("presets", cwd=tmp_path)
    assert result.returncode == 0
    for name in wb.PRESETS:
        assert name in result.stdout


def test_max_steps_mid_epoch_still_leaves_the_last_checkpoint(tmp_path):
    run = wb.fit(preset="supervised", overrides=TINY + ["trainer.max_steps=3", f"runs_dir={tmp_path}"],
                 cache_dir=tmp_path / "data")
    checkpoint = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 3 and run.summary["steps"] == 3


def test_training_curves_put_losses_left_and_accuracies_right(run):
    fig = wb.plots.training_curves(run)
    by_name = {t.name: t for t in fig.data}
    assert by_name["train/loss"].xaxis == "x" and by_name["val/supervised/acc"].xaxis == "x2"
    assert list(by_name["val/supervised/acc"].y) == run.curve("val/supervised/acc")["value"].tolist()


def test_fit_leaves_a_process_group_it_did_not_start_to_its_owner(tmp_path):
    """``fit`` destroys only a group it started (Lightning's DDP launcher); a torchrun-style script
    that made its own group keeps it for what it does after training."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("needs torch.distributed with gloo")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        run = wb.fit(preset="supervised", overrides=TINY + ["diagnostics.enabled=false", f"runs_dir={tmp_path}"],
                     cache_dir=tmp_path / "data")
        assert run.summary["status"] == "completed"
        assert dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
