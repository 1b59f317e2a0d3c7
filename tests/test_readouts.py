import math

import pandas as pd
import pytest
import torch

import workbench as wb
from workbench.analysis import readouts
from workbench.diagnostics import rankme
from workbench.training.module import WorkbenchModule


def table():
    """Two epochs, three layers, two pools; values chosen so every answer is known by hand."""
    rows = []
    for epoch in (0, 3):
        for layer in (0, 1, 2):
            for pool in ("cls", "mean"):
                rows.append((epoch, layer, pool, "rankme", 10.0 * epoch + layer + (0.5 if pool == "cls" else 0.0)))
                # color fades with depth, count grows, shape peaks in the middle (ties at layers 0 and 2)
                rows.append((epoch, layer, pool, "factor/color", [0.9, 0.6, 0.3][layer]))
                rows.append((epoch, layer, pool, "factor/count", [0.2, 0.4, 0.8][layer]))
                rows.append((epoch, layer, pool, "factor/shape", [0.5, 0.7, 0.5][layer]))
    return pd.DataFrame(rows, columns=["epoch", "layer", "pool", "metric", "value"])


def test_by_layer_picks_the_last_epoch_and_the_pool():
    t = table()
    assert readouts.final_epoch(t) == 3
    assert readouts.by_layer(t, "rankme").tolist() == [30.0, 31.0, 32.0]
    assert readouts.by_layer(t, "rankme", pool="cls", epoch=0).tolist() == [0.5, 1.5, 2.5]
    assert readouts.at_last_layer(t, "rankme") == 32.0


def test_peak_layer_and_factor_table():
    t = table()
    assert readouts.peak_layer(t, "factor/color") == 0
    assert readouts.peak_layer(t, "factor/count") == 2
    assert readouts.peak_layer(t, "factor/shape") == 1
    assert readouts.factor_names(t) == ["color", "count", "shape"]
    ft = readouts.factor_table(t)
    assert list(ft.columns) == ["color", "count", "shape"] and list(ft.index) == [0, 1, 2]
    assert ft.loc[2, "color"] == 0.3 and ft.loc[1, "shape"] == 0.7


def test_peak_layer_ignores_nan_and_shallowest_wins_a_tie():
    t = pd.DataFrame({"epoch": 0, "layer": [0, 1, 2, 3], "pool": "mean", "metric": "m",
                      "value": [float("nan"), 0.4, 0.4, 0.1]})
    assert readouts.peak_layer(t, "m") == 1


def test_missing_metric_pool_and_epoch_are_named():
    t = table()
    with pytest.raises(KeyError, match="'knn_acc' was not recorded; recorded metrics: factor/color"):
        readouts.by_layer(t, "knn_acc")
    with pytest.raises(KeyError, match="pool 'tokens'.*\\['cls', 'mean'\\]"):
        readouts.by_layer(t, "rankme", pool="tokens")
    with pytest.raises(KeyError, match="epoch 7.*\\[0, 3\\]"):
        readouts.by_layer(t, "rankme", epoch=7)
    with pytest.raises(ValueError, match="empty"):
        readouts.by_layer(t.iloc[:0], "rankme")
    two = pd.concat([t.assign(run="a"), t.assign(run="b")])  # what wb.compare_runs returns
    with pytest.raises(ValueError, match="holds 2 runs \\(a, b\\)"):
        readouts.by_layer(two, "rankme")
    assert readouts.by_layer(t.assign(run="a"), "rankme").equals(readouts.by_layer(t, "rankme"))


def test_final_logged_averages_the_last_values(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    pd.DataFrame({"epoch": [0, 0, 0, 1], "step": [9, 19, 29, 39], "train/x": [1.0, float("nan"), 3.0, 5.0]}).to_csv(
        run_dir / "metrics.csv", index=False)
    run = wb.Run(run_dir)
    assert readouts.final_logged(run, "train/x") == 5.0
    assert readouts.final_logged(run, "train/x", last=2) == 4.0  # NaN rows are not logging events
    with pytest.raises(KeyError, match="'train/y' is not a column.*train/x"):
        readouts.final_logged(run, "train/y")


TINY = ["data.shapes.num_images=400", "data.batch_size=32", "model.width=16", "model.depth=2", "model.heads=2",
        "model.patch_size=8", "trainer.max_steps=3", "data.probe_size=40", "views.local_crops=0",
        "diagnostics.enabled=false"]


def test_objective_rankme_matches_a_hand_computed_forward(tmp_path):
    run = wb.fit(preset="toy-collapse", overrides=TINY + ["objectives.toy.params.dim=8", f"runs_dir={tmp_path}"],
                 cache_dir=tmp_path / "data")
    dm = wb.data.TensorDataModule(run.config.data, cache_dir=tmp_path / "data").prepare()
    images = dm.splits["val"].images[:30]
    got = readouts.objective_rankme(run, images=images)
    module = WorkbenchModule.load_from_checkpoint(run.checkpoint, map_location="cpu", weights_only=True).eval()
    with torch.no_grad():
        out = module(images)
        toy = module.objectives["toy"]
        pooled = out.pooled(2, module.backbone.pool)
        softmax = torch.softmax(toy.projector(pooled), dim=-1)  # the toy's loss compares these
    assert got["width"] == 8 and got["n"] == 30
    assert math.isclose(got["embedding"], float(rankme(softmax)), rel_tol=1e-5)
    assert math.isclose(got["last_layer"], float(rankme(pooled)), rel_tol=1e-5)
    # without images: the first validation images, rebuilt from the data cache (no probe saved)
    again = readouts.objective_rankme(run, num_images=30, cache_dir=tmp_path / "data")
    assert math.isclose(again["embedding"], got["embedding"], rel_tol=1e-5)


def test_objective_rankme_without_an_embedding_uses_the_pooled_layer(tmp_path):
    run = wb.fit(preset="supervised", overrides=TINY + [f"runs_dir={tmp_path}"], cache_dir=tmp_path / "data")
    images = wb.data.TensorDataModule(run.config.data, cache_dir=tmp_path / "data").prepare().splits["val"].images[:30]
    got = readouts.objective_rankme(run, images=images)
    assert got["embedding"] == got["last_layer"] and got["width"] == 16
    with pytest.raises(KeyError, match="'dino' is not in the run; it has \\['supervised'\\]"):
        readouts.objective_rankme(run, "dino", images=images)


def test_objective_factors_probe_the_projector_output_and_the_last_layer(tmp_path):
    from workbench.diagnostics.probes import factor_decodability

    overrides = [o for o in TINY if not o.startswith("diagnostics.")] + [
        "data.probe_size=60", "diagnostics.coherence=[]", "diagnostics.save_embeddings=false",
        "objectives.vicreg.params.dim=8", f"runs_dir={tmp_path}"]
    run = wb.fit(preset="vicreg", overrides=overrides, cache_dir=tmp_path / "data")
    got = readouts.objective_factors(run, num_images=60, cache_dir=tmp_path / "data")
    # by hand: the checkpoint's projector on the pooled last layer of the first 60 validation images
    dm = wb.data.TensorDataModule(run.config.data, cache_dir=tmp_path / "data").prepare()
    val = dm.splits["val"]
    module = WorkbenchModule.load_from_checkpoint(run.checkpoint, map_location="cpu", weights_only=True).eval()
    with torch.no_grad():
        pooled = module(val.images[:60]).pooled(2, module.backbone.pool)
        projected = module.objectives["vicreg"].projector(pooled)
    for column, z in (("embedding", projected), ("last_layer", pooled)):
        expected = factor_decodability(z, val.factors[:60], dm.data.factors, seed=0, solver="ridge")
        assert got[column].to_dict() == pytest.approx({f: r["score"] for f, r in expected.items()}, abs=1e-6)
    assert list(got.columns) == ["embedding", "last_layer"] and "color" in got.index

    # initial=True is the network fit started from: its last layer scores what the diagnostics
    # measured at epoch 0 on the same 60 probe images (to within one of the 18 held-out samples,
    # as the diagnostics embed in batches)
    before = readouts.objective_factors(run, num_images=60, cache_dir=tmp_path / "data", initial=True)
    epoch0 = run.diagnostics
    epoch0 = epoch0[(epoch0.epoch == 0) & (epoch0.layer == 2) & (epoch0.pool == module.backbone.pool)]
    for factor, score in before["last_layer"].items():
        recorded = float(epoch0.loc[epoch0.metric == f"factor/{factor}", "value"].iloc[0])
        assert score == pytest.approx(recorded, abs=1 / 18 + 1e-6), factor
    assert not before["embedding"].equals(got["embedding"])


def test_objective_factors_needs_data_with_factors(tmp_path, monkeypatch):
    run = wb.fit(preset="supervised", overrides=TINY + [f"runs_dir={tmp_path}"], cache_dir=tmp_path / "data")
    no_factors = {"images": torch.zeros(4, 3, 32, 32, dtype=torch.uint8), "factors": None, "factor_specs": []}
    monkeypatch.setattr(readouts, "_held_out", lambda *a: no_factors)
    with pytest.raises(ValueError, match="without ground-truth factors"):
        readouts.objective_factors(run, cache_dir=tmp_path / "data")


def test_spectrum_reads_the_saved_eigenvalues_largest_first(tmp_path):
    import numpy as np

    (tmp_path / "embeddings").mkdir()
    np.savez(tmp_path / "embeddings" / "epoch=000.npz", spectrum_l1_cls=np.array([0.1, 0.5, 0.4]),
             spectrum_l2_cls=np.array([0.2, 0.2, 0.6]), spectrum_l0_mean=np.array([1.0, 0.0, 0.0]))
    np.savez(tmp_path / "embeddings" / "epoch=004.npz", spectrum_l2_cls=np.array([0.001, 0.003, 0.0]))
    run = wb.Run(tmp_path)
    last = readouts.spectrum(run)  # the last epoch, the deepest layer
    assert last.tolist() == [0.003, 0.001, 0.0]
    first = readouts.spectrum(run, epoch=0)
    assert first.tolist() == [0.6, 0.2, 0.2] and math.isclose(first[0] / first.sum(), 0.6)
    assert readouts.spectrum(run, layer=1, epoch=0).tolist() == [0.5, 0.4, 0.1]
    with pytest.raises(KeyError, match="saved layers: \\[1, 2\\]"):
        readouts.spectrum(run, layer=3, epoch=0)
    with pytest.raises(KeyError, match="saved epochs: \\[0, 4\\]"):
        readouts.spectrum(run, epoch=2)
    with pytest.raises(KeyError, match="pool 'mean' at epoch 4"):
        readouts.spectrum(run, pool="mean")
