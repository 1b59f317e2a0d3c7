"""Numbers over seeds: per-run numbers, mean +- std per preset, and their display."""

import math

import pandas as pd
import pytest

import workbench as wb
from workbench.analysis import summaries
from workbench.runs import Run, write_config


def fake_run(root, name, preset, seed, linear_acc, val_acc=None, depth=2, deep=False, overrides=None):
    """A run directory with a config, a diagnostics table (last layer = depth) and a metrics.csv."""
    path = root / name
    path.mkdir(parents=True)
    write_config(path, wb.make_config(preset, {"seed": seed, "model.depth": depth, "name": name, **(overrides or {})}))
    rows = []
    for epoch, scale in ((0, 0.5), (3, 1.0)):  # epoch 0 (before training) must be ignored
        for layer in range(depth + 1):
            rows.append((epoch, layer, "mean", "linear_acc", linear_acc * scale if layer == depth else 0.1))
            rows.append((epoch, layer, "mean", "knn_acc", 0.5 * scale))
            rows.append((epoch, layer, "mean", "rankme", 10.0 + layer))
            rows.append((epoch, layer, "cls", "linear_acc", 0.99))
    table = pd.DataFrame(rows, columns=["epoch", "layer", "pool", "metric", "value"])
    table.to_csv(path / "diagnostics.csv", index=False)
    metrics = [{"epoch": 0, "step": 9, "train/loss": 1.0}]
    if val_acc is not None:
        column = f"val/deepsup/acc_l{depth}" if deep else "val/supervised/acc"
        metrics += [{"epoch": 0, "step": 10, column: 0.0}, {"epoch": 1, "step": 20, column: val_acc}]
    pd.DataFrame(metrics).to_csv(path / "metrics.csv", index=False)
    return Run(path)


def test_final_numbers_read_the_last_epoch_last_layer_and_last_validation(tmp_path):
    run = fake_run(tmp_path, "a", "supervised", 0, linear_acc=0.8, val_acc=0.9)
    assert summaries.final_numbers(run) == {"val_acc": 0.9, "linear_acc": 0.8, "knn_acc": 0.5, "rankme": 12.0}
    assert summaries.final_numbers(run, pool="cls")["linear_acc"] == 0.99
    deep = fake_run(tmp_path, "b", "stepwise-deepsup", 0, linear_acc=0.8, val_acc=0.7, deep=True)
    assert summaries.val_accuracy(deep) == 0.7
    ssl = fake_run(tmp_path, "c", "lejepa", 0, linear_acc=0.4)
    assert math.isnan(summaries.final_numbers(ssl)["val_acc"])


def test_mean_and_sample_std_over_seeds_per_preset(tmp_path):
    runs = [fake_run(tmp_path, f"sup-{s}", "supervised", s, linear_acc=acc, val_acc=acc + 0.05)
            for s, acc in enumerate([0.8, 0.9, 1.0])]
    runs += [fake_run(tmp_path, "lejepa-0", "lejepa", 0, linear_acc=0.4)]
    table = summaries.seed_table(runs)
    assert table["preset"].tolist() == ["supervised"] * 3 + ["lejepa"] and table["seed"].tolist() == [0, 1, 2, 0]
    assert table["experiment"].tolist() == table["preset"].tolist()  # one experiment per preset: its name
    stats = summaries.mean_std(table)
    assert list(stats.index) == ["supervised", "lejepa"]  # order of first appearance
    # 0.8, 0.9, 1.0: mean 0.9, sample std sqrt(((-0.1)^2 + 0 + 0.1^2) / 2) = 0.1
    assert stats.loc["supervised", "linear_acc/mean"] == pytest.approx(0.9)
    assert stats.loc["supervised", "linear_acc/std"] == pytest.approx(0.1)
    assert stats.loc["supervised", "val_acc/mean"] == pytest.approx(0.95)
    assert stats.loc["supervised", "n"] == 3 and stats.loc["lejepa", "n"] == 1
    # one seed: the std is undefined, not 0; a number no run recorded stays NaN
    assert math.isnan(stats.loc["lejepa", "linear_acc/std"]) and math.isnan(stats.loc["lejepa", "val_acc/mean"])
    shown = summaries.mean_pm_std(stats)
    assert shown.loc["supervised", "linear_acc"] == "0.900 ± 0.100"
    assert shown.loc["lejepa", "linear_acc"] == "0.400" and shown.loc["lejepa", "val_acc"] == "-"
    assert shown.loc["supervised", "n"] == 3


def test_runs_of_one_preset_with_other_settings_are_separate_experiments(tmp_path):
    weights = {"a0": 1.0, "a1": 1.0, "b0": 0.5, "b1": 0.5}
    runs = [fake_run(tmp_path, name, "lejepa", int(name[1]), linear_acc=acc, overrides={"objectives.lejepa.weight": w})
            for (name, w), acc in zip(weights.items(), [0.2, 0.4, 0.6, 1.0])]
    runs.append(fake_run(tmp_path, "c0", "lejepa", 0, linear_acc=0.3, depth=3))
    runs.append(fake_run(tmp_path, "sup", "supervised", 0, linear_acc=0.9))
    table = summaries.seed_table(runs)
    # each label names the fields that set it apart from the preset's other experiments
    a = "lejepa [model.depth=2 objectives.lejepa.weight=1.0]"
    b = "lejepa [model.depth=2 objectives.lejepa.weight=0.5]"
    c = "lejepa [model.depth=3 objectives.lejepa.weight=1.0]"
    assert table["experiment"].tolist() == [a, a, b, b, c, "supervised"]
    stats = summaries.mean_std(table)
    assert list(stats.index) == [a, b, c, "supervised"]
    # never averaged across settings: (0.2 + 0.4) / 2 and (0.6 + 1.0) / 2, not the mean of all four
    assert stats.loc[a, "linear_acc/mean"] == pytest.approx(0.3) and stats.loc[b, "linear_acc/mean"] == pytest.approx(0.8)
    assert stats.loc[a, "n"] == 2 and stats.loc[c, "n"] == 1
    # grouping by preset is still there when asked for
    assert summaries.mean_std(table, by="preset").loc["lejepa", "n"] == 5


def test_experiments_whose_values_print_alike_get_numbered_labels(monkeypatch):
    from types import SimpleNamespace

    fields = {"a": {"preset": "p", "x": 1}, "b": {"preset": "p", "x": "1"}, "c": {"preset": "p", "x": 1},
              "d": {"preset": "q", "y": ["u", "v"]}, "e": {"preset": "q", "y": "u,v"}}
    monkeypatch.setattr(summaries, "experiment_fields", lambda config: config)
    runs = [SimpleNamespace(name=name, config=f) for name, f in fields.items()]
    # 1 and "1" print alike, as do ["u", "v"] and "u,v": never one group
    assert summaries.experiment_labels(runs) == ["p [x=1] #1", "p [x=1] #2", "p [x=1] #1", "q [y=u,v] #1",
                                                 "q [y=u,v] #2"]


def test_errors_name_what_exists(tmp_path):
    table = summaries.seed_table([fake_run(tmp_path, "a", "supervised", 0, linear_acc=0.8)])
    with pytest.raises(KeyError, match="cannot group by 'method'.*run, experiment, preset, seed"):
        summaries.mean_std(table, by="method")
    with pytest.raises(KeyError, match="no column 'top5'"):
        summaries.mean_std(table, numbers=["top5"])
