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


# ---------------------------------------------------------------------------------------- intervals over seeds

# Student t quantiles from a printed table (not from scipy): t_{0.975, dof} and t_{0.95, 2}
T975 = {1: 12.706205, 2: 4.302653, 3: 3.182446}
T95_2 = 2.919986


def metric_run(root, name, preset, seed, values, overrides=None):
    """A run whose diagnostics hold metric ``m`` with ``values[layer]`` at the last epoch (and 0 at epoch 0),
    pool ``mean``, and ``values[layer] + 1`` for pool ``cls``."""
    path = root / name
    path.mkdir(parents=True)
    write_config(path, wb.make_config(preset, {"seed": seed, "model.depth": len(values) - 1, "name": name,
                                               **(overrides or {})}))
    rows = [(epoch, layer, pool, "m", (v + (pool == "cls")) * (epoch > 0))
            for epoch in (0, 2) for layer, v in enumerate(values) for pool in ("mean", "cls")]
    pd.DataFrame(rows, columns=["epoch", "layer", "pool", "metric", "value"]).to_csv(path / "diagnostics.csv",
                                                                                      index=False)
    pd.DataFrame([{"epoch": 0, "step": 9, "val/supervised/acc": values[-1] / 2}]).to_csv(path / "metrics.csv",
                                                                                         index=False)
    return Run(path)


def test_t_interval_by_hand():
    # 1, 2, 3: mean 2, sd 1, half-width t_{0.975,2} / sqrt(3)
    out = summaries.t_interval([1.0, 2.0, 3.0])
    half = T975[2] / math.sqrt(3)
    assert out["n"] == 3 and out["mean"] == pytest.approx(2.0) and out["sd"] == pytest.approx(1.0)
    assert out["half_width"] == pytest.approx(half, rel=1e-6)
    assert (out["low"], out["high"]) == (pytest.approx(2 - half, rel=1e-6), pytest.approx(2 + half, rel=1e-6))
    # 0.5, 1.5: mean 1, sd sqrt(0.5), half-width 12.706205 * sqrt(0.5) / sqrt(2) = 6.3531
    two = summaries.t_interval([0.5, 1.5])
    assert two["half_width"] == pytest.approx(T975[1] * 0.5, rel=1e-6)
    # a 90% interval uses t_{0.95,2}
    assert summaries.t_interval([1.0, 2.0, 3.0], confidence=0.9)["half_width"] == pytest.approx(T95_2 / math.sqrt(3),
                                                                                                 rel=1e-6)
    # NaN (a number a run did not record) is left out and not counted
    assert summaries.t_interval([1.0, math.nan, 2.0, 3.0])["n"] == 3
    # equal values: a zero-width interval at the value
    flat = summaries.t_interval([0.75, 0.75, 0.75])  # exact in binary: the sd is exactly 0
    assert flat["low"] == flat["high"] == 0.75 and flat["sd"] == 0.0


def test_t_interval_with_one_or_no_value_is_explicitly_undefined():
    one = summaries.t_interval([0.4])
    assert one["mean"] == 0.4 and one["n"] == 1 and math.isnan(one["sd"])
    assert one["low"] == -math.inf and one["high"] == math.inf and one["half_width"] == math.inf
    none = summaries.t_interval([math.nan])
    assert none["n"] == 0 and all(math.isnan(none[k]) for k in ("mean", "low", "high", "sd"))
    with pytest.raises(ValueError, match="confidence must be a number in \\(0, 1\\)"):
        summaries.t_interval([1.0, 2.0], confidence=95)


def test_seed_interval_reads_any_metric_layer_and_pool(tmp_path):
    runs = [metric_run(tmp_path, f"s{s}", "supervised", s, [0.0, 10.0 + s, v]) for s, v in enumerate([1.0, 2.0, 3.0])]
    out = summaries.seed_interval(runs, "m")  # the last layer: 1, 2, 3
    assert out["mean"] == pytest.approx(2.0) and out["n"] == 3
    assert out["high"] == pytest.approx(2 + T975[2] / math.sqrt(3), rel=1e-6)
    assert summaries.seed_interval(runs, "m", layer=1)["mean"] == pytest.approx(11.0)  # 10, 11, 12
    assert summaries.seed_interval(runs, "m", pool="cls")["mean"] == pytest.approx(3.0)  # 2, 3, 4
    assert summaries.seed_interval(runs, "m", epoch=0)["mean"] == 0.0
    assert summaries.seed_interval(runs, "val_acc")["mean"] == pytest.approx(1.0)  # 0.5, 1.0, 1.5
    assert summaries.seed_interval([str(r.path) for r in runs[:1]], "m")["high"] == math.inf  # paths work too
    with pytest.raises(KeyError, match="s0.*no value at layer 5; recorded layers: \\[0, 1, 2\\]"):
        summaries.seed_interval(runs, "m", layer=5)
    with pytest.raises(KeyError, match="s0.*'knn_acc' was not recorded"):
        summaries.seed_interval(runs, "knn_acc")
    shown = summaries.format_interval(out)
    assert shown == f"2.000 [{2 - T975[2] / math.sqrt(3):.3f}, {2 + T975[2] / math.sqrt(3):.3f}] (n=3)"
    assert summaries.format_interval(summaries.t_interval([0.5])) == "0.500 (n=1, no interval)"


def test_seed_intervals_one_row_per_experiment_and_never_pooled(tmp_path):
    runs = [metric_run(tmp_path, f"sup{s}", "supervised", s, [0.0, v]) for s, v in enumerate([1.0, 2.0, 3.0])]
    runs += [metric_run(tmp_path, f"lej{s}", "lejepa", s, [0.0, v]) for s, v in enumerate([5.0, 7.0])]
    table = summaries.seed_intervals(runs, "m")
    assert list(table.index) == ["supervised", "lejepa"]
    assert table.loc["supervised", "mean"] == pytest.approx(2.0) and table.loc["supervised", "n"] == 3
    # 5, 7: mean 6, sd sqrt(2), half-width 12.706205 * sqrt(2) / sqrt(2)
    assert table.loc["lejepa", "half_width"] == pytest.approx(T975[1], rel=1e-6)
    with pytest.raises(ValueError, match="2 experiments \\(supervised; lejepa\\).*seed_intervals"):
        summaries.seed_interval(runs, "m")
    again = metric_run(tmp_path, "sup0-again", "supervised", 0, [0.0, 1.5])
    with pytest.raises(ValueError, match="sup0, sup0-again are one experiment \\(supervised\\) with one seed \\(0\\)"):
        summaries.seed_intervals([*runs, again], "m")


def test_paired_difference_pairs_by_seed(tmp_path):
    a_values = {0: 0.80, 1: 0.85, 2: 0.90}
    b_values = {2: 0.75, 0: 0.70, 1: 0.80}  # another order: pairing is by seed, not by position
    a = [metric_run(tmp_path, f"a{s}", "supervised", s, [0.0, v]) for s, v in a_values.items()]
    b = [metric_run(tmp_path, f"b{s}", "lejepa", s, [0.0, v]) for s, v in b_values.items()]
    out = summaries.paired_difference(a, b, "m")
    # differences 0.10, 0.05, 0.15: mean 0.10, sd 0.05, half-width 4.302653 * 0.05 / sqrt(3) = 0.1242
    assert out["n"] == 3 and out["mean"] == pytest.approx(0.10) and out["sd"] == pytest.approx(0.05)
    assert out["half_width"] == pytest.approx(T975[2] * 0.05 / math.sqrt(3), rel=1e-6)
    assert out["excludes_zero"] is False  # [-0.024, 0.224]
    backwards = summaries.paired_difference(b, a, "m")
    assert backwards["mean"] == pytest.approx(-0.10) and backwards["low"] == pytest.approx(-out["high"])

    c = [metric_run(tmp_path, f"c{s}", "lejepa", s, [0.0, a_values[s] - d]) for s, d in zip((1, 0, 2), (0.11, 0.10, 0.12))]
    tight = summaries.paired_difference(a, c, "m")
    # differences 0.10, 0.11, 0.12: mean 0.11, sd 0.01, half-width 0.0248: the interval excludes 0
    assert tight["mean"] == pytest.approx(0.11) and tight["half_width"] == pytest.approx(T975[2] * 0.01 / math.sqrt(3),
                                                                                          rel=1e-6)
    assert tight["excludes_zero"] is True and tight["low"] > 0
    # one pair: no interval, never "excludes zero"
    single = summaries.paired_difference(a[:1], c[1:2], "m")
    assert single["mean"] == pytest.approx(0.10) and single["high"] == math.inf and single["excludes_zero"] is False


def test_paired_difference_refuses_unpaired_seeds_and_mixed_recipes(tmp_path):
    a = [metric_run(tmp_path, f"a{s}", "supervised", s, [0.0, 1.0]) for s in (0, 1, 2)]
    b = [metric_run(tmp_path, f"b{s}", "lejepa", s, [0.0, 1.0]) for s in (0, 1, 3)]
    with pytest.raises(ValueError, match="not trained with the same seeds: only A \\(supervised\\) has \\[2\\], "
                                         "only B \\(lejepa\\) has \\[3\\]"):
        summaries.paired_difference(a, b, "m")
    with pytest.raises(ValueError, match="recipe A's runs are 2 experiments"):
        summaries.paired_difference([a[0], b[1]], b[:2], "m")
    with pytest.raises(ValueError, match="runs_b: no runs given"):
        summaries.paired_difference(a, [], "m")


def test_an_interval_goes_to_the_headline(tmp_path):
    from workbench.analysis import headline

    runs = [metric_run(tmp_path, f"s{s}", "supervised", s, [0.0, v]) for s, v in enumerate([1.0, 2.0, 3.0])]
    headline.record("nb", {"m": summaries.seed_interval(runs, "m")}, runs_dir=tmp_path, show=False)
    written = headline.load("nb", tmp_path)
    assert written["m/mean"] == pytest.approx(2.0) and written["m/n"] == 3.0
    assert written["m/low"] == pytest.approx(2 - T975[2] / math.sqrt(3), rel=1e-6)
    assert set(written) == {"m/mean", "m/low", "m/high", "m/half_width", "m/sd", "m/n"}
