"""The diagnostics callback fills diagnostics.csv and embeddings/ for every diagnostic epoch."""

import numpy as np
import pytest

import workbench as wb

SMALL = [
    "data.shapes.num_images=4000", "data.batch_size=128", "data.probe_size=300", "model.patch_size=8",
    "model.width=32", "model.depth=2", "model.heads=4", "trainer.max_epochs=2", "diagnostics.every_n_epochs=1",
    "diagnostics.token_images=64", "diagnostics.monitor_every_n_steps=5", "trainer.log_every_n_steps=5",
    "views.local_crops=2",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("diag")
    return [wb.fit(preset=p, overrides=SMALL + [f"runs_dir={root / 'runs'}"], cache_dir=root / "data")
            for p in ("supervised", "lejepa")]


def test_every_layer_pool_and_metric_is_there_for_every_diagnostic_epoch(runs):
    for run in runs:
        table = run.diagnostics
        assert sorted(table["epoch"].unique()) == [0, 1, 2]
        pooled = table[table["pool"].isin(["cls", "mean"]) & ~table["metric"].str.startswith("cka/")]
        keys = {(layer, pool, metric) for _, layer, pool, metric in pooled[["layer", "pool", "metric"]].itertuples()}
        metrics = {m for _, _, m in keys}
        for required in ("rankme", "effective_rank", "participation_ratio", "alpha", "alpha_r2", "std_l2",
                         "uniformity", "sigreg", "linear_acc", "knn_acc", "invariance", "alignment", "lidar", "factor/shape",
                         "factor/count", "factor/pos_x", "coherence/shape|color/cosine"):
            assert required in metrics, required
        expected = {(layer, pool, m) for layer in range(3) for pool in ("cls", "mean") for m in metrics
                    if (layer, pool) != (0, "cls")}  # layer 0's CLS token is a constant
        assert keys == expected
        for epoch, rows in pooled.groupby("epoch"):
            assert len(rows) == len(expected), epoch
            # a normalised coherence is NaN where its split-half ceiling is not positive (probes that are noise)
            rows = rows[~rows["metric"].str.endswith("/normalised")]
            assert np.isfinite(rows["value"].to_numpy(dtype=float)).all(), rows[~np.isfinite(rows["value"])]
        tokens = table[table["pool"] == "tokens"]
        assert set(tokens["metric"]) == {"token_cosine", "residual_ratio"} and len(tokens) == 3 * 3 * 2
        cka = table[table["metric"].str.startswith("cka/")]
        assert len(cka) == 3 * (2 * 2 + 3 * 3)  # epochs x (cls: layers 1-2, mean: layers 0-2) squared
        diagonal = cka[cka["metric"] == "cka/" + cka["layer"].astype(str)]
        np.testing.assert_allclose(diagonal["value"], 1.0, atol=1e-4)


def test_embeddings_are_saved_per_epoch_with_spectra_labels_and_factors(runs):
    run = runs[0]
    for epoch in (0, 1, 2):
        data = run.embeddings(epoch)
        assert data["l2_cls"].shape == (300, 32) and data["l0_mean"].shape == (300, 32) and "l0_cls" not in data
        assert data["spectrum_l1_cls"].shape == (32,)
        assert data["labels"].shape == (300,) and data["factors"].shape == (300, 10)
        np.testing.assert_array_equal(data["ids"], np.arange(300))


def test_cheap_monitors_are_logged_on_training_batches(runs):
    m = runs[1].metrics
    assert m["train/monitor/rankme"].notna().sum() >= 3 and m["train/monitor/std_l2"].notna().sum() >= 3


def test_compare_runs_stacks_the_tables(runs):
    table = wb.compare_runs(runs)
    assert list(table.columns) == ["run", "epoch", "layer", "pool", "metric", "value"]
    assert set(table["run"]) == {r.name for r in runs}
    assert len(table) == sum(len(r.diagnostics) for r in runs)
    assert len(wb.compare_runs(runs[0].path.parent)) == len(table)


def test_cost_is_recorded(runs):
    for run in runs:
        assert 0 < run.summary["diagnostics_s"] < run.summary["wall_s"]
