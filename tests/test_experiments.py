import json

import pytest

from workbench.analysis.experiments import Variant, same_experiment, train_variants, variant_config
from workbench.errors import ConfigError

TINY = {"data.shapes.num_images": 300, "data.batch_size": 32, "model.width": 16, "model.depth": 2,
        "model.heads": 2, "model.patch_size": 8, "trainer.max_steps": 2, "trainer.log_every_n_steps": 1,
        "diagnostics.enabled": False}


def test_variant_config_layers_common_then_variant_and_places_the_run():
    c = variant_config("deep", Variant("supervised", {"model.depth": 3}), {"model.depth": 2, "model.width": 16},
                       runs_dir="out", notebook="01_x")
    assert c.model.depth == 3 and c.model.width == 16  # the variant's own override wins
    assert c.name == "deep" and c.runs_dir == "out/01_x" and c.preset == "supervised"
    with pytest.raises(ConfigError, match="variant label"):
        variant_config("a/b", Variant("supervised"))


def test_same_experiment_ignores_only_name_place_and_progress_bar():
    a = variant_config("a", Variant("supervised"), {"trainer.enable_progress_bar": True}, runs_dir="x")
    b = variant_config("b", Variant("supervised"), {"trainer.enable_progress_bar": False}, runs_dir="y")
    assert same_experiment(a, b)
    assert not same_experiment(a, variant_config("a", Variant("supervised", {"seed": 1}), runs_dir="x"))
    assert not same_experiment(a, variant_config("a", Variant("local-greedy"), runs_dir="x"))


def test_train_reuse_replace(tmp_path):
    variants = {"e2e": "supervised", "greedy": ("local-greedy", {})}
    runs = train_variants(variants, notebook="nb", common=TINY, runs_dir=tmp_path, cache_dir=tmp_path / "data",
                          verbose=False)
    assert list(runs) == ["e2e", "greedy"]
    assert runs["greedy"].path == tmp_path / "nb" / "greedy"
    assert runs["greedy"].config.model.gradient_isolation is True
    assert all(r.summary["status"] == "completed" for r in runs.values())

    # the same request again: nothing is retrained (the summaries are not rewritten)
    stamp = {k: (r.path / "summary.json").stat().st_mtime_ns for k, r in runs.items()}
    again = train_variants(variants, notebook="nb", common=TINY, runs_dir=tmp_path, cache_dir=tmp_path / "data",
                           verbose=False)
    assert {k: (r.path / "summary.json").stat().st_mtime_ns for k, r in again.items()} == stamp

    # a changed setting, or a run that did not complete, is trained again in place
    summary = tmp_path / "nb" / "e2e" / "summary.json"
    summary.write_text(json.dumps({"status": "failed"}))
    changed = train_variants(variants, notebook="nb", common={**TINY, "seed": 1}, runs_dir=tmp_path,
                             cache_dir=tmp_path / "data", verbose=False)
    assert changed["greedy"].config.seed == 1 and changed["e2e"].summary["status"] == "completed"
    assert sorted(p.name for p in (tmp_path / "nb").iterdir()) == ["e2e", "greedy"]


def test_invalid_variants_fail_before_anything_is_trained(tmp_path):
    with pytest.raises(ConfigError, match="preset"):
        train_variants({"ok": "supervised", "bad": "no-such-preset"}, notebook="nb", common=TINY, runs_dir=tmp_path)
    with pytest.raises(ConfigError, match="model.depth"):
        train_variants({"ok": Variant("supervised", {"model.depth": 0})}, notebook="nb", runs_dir=tmp_path)
    with pytest.raises(ConfigError, match="variants\\['x'\\]"):
        train_variants({"x": 3}, notebook="nb", runs_dir=tmp_path)
    with pytest.raises(ConfigError, match="at least one"):
        train_variants({}, notebook="nb", runs_dir=tmp_path)
    assert not (tmp_path / "nb").exists()


def test_a_folder_that_is_not_a_run_is_never_deleted(tmp_path):
    folder = tmp_path / "nb" / "e2e"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a run directory"):
        train_variants({"e2e": "supervised"}, notebook="nb", common=TINY, runs_dir=tmp_path, verbose=False)
    assert (folder / "notes.txt").read_text() == "mine"


def test_seeds_train_every_variant_once_per_seed_in_parallel_processes(tmp_path):
    variants = {"greedy": "local-greedy"}  # one variant: the two seeds' processes run at once
    runs = train_variants(variants, notebook="nb", common=TINY, runs_dir=tmp_path, cache_dir=tmp_path / "data",
                          verbose=False, seeds=[3, 5], jobs=2)
    assert list(runs) == ["greedy"]
    for label, preset in variants.items():
        assert [r.path.name for r in runs[label]] == [f"{label}-seed3", f"{label}-seed5"]
        assert [r.config.seed for r in runs[label]] == [3, 5]
        assert all(r.config.preset == preset and r.summary["status"] == "completed" for r in runs[label])
    # a process trained exactly the config asked for: reused as it is by a call in this process
    stamp = {r.path: (r.path / "summary.json").stat().st_mtime_ns for rs in runs.values() for r in rs}
    again = train_variants(variants, notebook="nb", common=TINY, runs_dir=tmp_path, cache_dir=tmp_path / "data",
                           verbose=False, seeds=[3, 5])
    assert {r.path: (r.path / "summary.json").stat().st_mtime_ns for rs in again.values() for r in rs} == stamp
    # seeds change the weights: the two seeds' first logged losses differ
    first = [float(r.metrics["train/loss"].dropna().iloc[0]) for r in runs["greedy"]]
    assert first[0] != first[1]


def test_seeds_and_jobs_are_checked_before_anything_is_trained(tmp_path):
    for seeds in ([], [0, 0], [0, 1.5], [True]):
        with pytest.raises(ConfigError, match="seeds"):
            train_variants({"a": "supervised"}, notebook="nb", common=TINY, runs_dir=tmp_path, seeds=seeds)
    for jobs in (0, 1.5, True):
        with pytest.raises(ConfigError, match="jobs"):
            train_variants({"a": "supervised"}, notebook="nb", common=TINY, runs_dir=tmp_path, jobs=jobs)
    assert not (tmp_path / "nb").exists()


def test_a_failed_process_names_its_run_and_log(tmp_path):
    from workbench.training.sweep import SweepError

    # a learning rate that makes the loss non-finite at once: every process stops with an error
    with pytest.raises(SweepError, match="1 of 1 runs failed:\n- a-seed7 .*log .*a-seed7.log"):
        train_variants({"a": "supervised"}, notebook="nb", common={**TINY, "optim.lr": 1e30}, runs_dir=tmp_path,
                       cache_dir=tmp_path / "data", verbose=False, seeds=[7], jobs=2)
