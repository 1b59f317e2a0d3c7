"""Bounded memory of the diagnostics pass: the sample cap, the chunked formulas, the streamed file.

Every capped or chunked computation is checked against an independent computation of the same
number (numpy on the whole input, or the uncapped function on the subset):

* ``subsample_indices``: fixed, sorted, ``None`` (every row) up to the cap;
* ``layer_embeddings`` keeps one compact N x D matrix per (layer, pool), never a view that pins a
  batch's B x T x D tokens;
* ``layer_metrics(max_samples=M)``: kNN accuracy and uniformity equal the functions on the subset,
  every other metric equals the uncapped one, and with ``M >= N`` the whole dict is unchanged;
* ``uniformity`` in row blocks and ``cka_matrix`` in row chunks equal the all-pairs / N x N Gram
  forms (float64 reference, tolerance 1e-6);
* ``write_npz`` round-trips through ``np.load``;
* the callback gives kNN and the augmented views exactly ``max_samples`` points;
* ``diagnostics.*`` values are validated with errors naming the field.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from workbench.diagnostics import cka_matrix, knn_accuracy, uniformity
from workbench.errors import ConfigError
from workbench.training.diagnostics_callback import (
    DiagnosticsCallback,
    layer_embeddings,
    layer_metrics,
    subsample_indices,
    write_npz,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tiny_module(depth: int = 2):
    from workbench.data.datamodule import DataInfo
    from workbench.training.module import WorkbenchModule

    config = wb.make_config("supervised", [f"model.depth={depth}", "model.width=32", "model.patch_size=8",
                                           "model.heads=4"])
    info = DataInfo("shapes", 3, 32, 4, ("a", "b", "c", "d"), (0.5,) * 3, (0.25,) * 3)
    torch.manual_seed(0)
    return WorkbenchModule(config, info).eval(), config


# ------------------------------------------------------------------------------------------ subset

def test_subsample_indices_is_fixed_sorted_and_every_row_below_the_cap():
    assert subsample_indices(100, None) is None
    assert subsample_indices(100, 100) is None and subsample_indices(100, 500) is None
    idx = subsample_indices(1000, 64, seed=3)
    assert idx.shape == (64,) and idx.dtype == torch.int64
    assert torch.equal(idx, idx.sort().values) and len(set(idx.tolist())) == 64
    assert 0 <= int(idx.min()) and int(idx.max()) < 1000
    assert torch.equal(idx, subsample_indices(1000, 64, seed=3))  # the same subset at every call
    assert not torch.equal(idx, subsample_indices(1000, 64, seed=4))
    with pytest.raises(ValueError, match="max_samples"):
        subsample_indices(10, 0)


# ---------------------------------------------------------------------------------------- embeddings

def test_layer_embeddings_are_compact_matrices_equal_to_the_model_outputs():
    module, _ = _tiny_module()
    images = torch.randint(0, 256, (70, 3, 32, 32), dtype=torch.uint8, generator=_gen(0))
    pooled, tokens = layer_embeddings(module, images, batch_size=32, token_images=40)
    with torch.no_grad():
        out = module(images)
    assert set(pooled) == {(0, "mean"), (1, "cls"), (1, "mean"), (2, "cls"), (2, "mean")}
    for (layer, pool), z in pooled.items():
        # one N x D block of its own: not a view into a batch's tokens (which would keep T times
        # more memory alive per batch)
        assert z.shape == (70, 32) and z.dtype == torch.float32 and z.is_contiguous()
        assert z.untyped_storage().nbytes() == z.numel() * 4
        torch.testing.assert_close(z, out.pooled(layer, pool), rtol=1e-5, atol=1e-5)
    for layer, t in tokens.items():
        assert t.shape == (40, 16, 32)
        torch.testing.assert_close(t, out.patches(layer)[:40], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------ metrics

def _clusters(n: int = 300, d: int = 8, seed: int = 0):
    g = _gen(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    centres = 2.0 * torch.randn(3, d, generator=g)
    return centres[labels] + torch.randn(n, d, generator=g), labels


def _uniformity_numpy(z: np.ndarray, t: float = 2.0) -> float:
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    sq = ((u[:, None, :] - u[None, :, :]) ** 2).sum(-1)
    m = len(u)
    return float(np.log(np.exp(-t * sq)[~np.eye(m, dtype=bool)].mean()))


def test_layer_metrics_cap_gives_the_functions_on_the_subset_and_changes_nothing_else():
    z, labels = _clusters()
    full = layer_metrics(z, labels, knn_k=5, probe_steps=10, seed=2)
    assert layer_metrics(z, labels, knn_k=5, probe_steps=10, seed=2, max_samples=300) == full
    capped = layer_metrics(z, labels, knn_k=5, probe_steps=10, seed=2, max_samples=100)
    idx = subsample_indices(300, 100, seed=2)
    assert capped["knn_acc"] == knn_accuracy(z[idx], labels[idx], k=5, seed=2)
    assert abs(capped["uniformity"] - _uniformity_numpy(z[idx].double().numpy())) < 1e-5
    for name, value in full.items():
        if name not in ("knn_acc", "uniformity"):
            assert capped[name] == value or (math.isnan(value) and math.isnan(capped[name])), name


def test_uniformity_in_row_blocks_equals_all_pairs():
    z = torch.randn(120, 6, generator=_gen(1)) + 0.5
    reference = _uniformity_numpy(z.double().numpy())
    for block in (1, 7, 64, 1024):
        assert abs(float(uniformity(z, block=block)) - reference) < 1e-6, block
    with pytest.raises(ValueError, match="block"):
        uniformity(z, block=0)


def _cka_gram_form(layers: list[torch.Tensor]) -> np.ndarray:
    """<K_l, K_m> / (|K_l| |K_m|) with centred N x N Grams, in numpy float64."""
    grams = []
    for x in layers:
        xc = x.double().numpy() - x.double().numpy().mean(0)
        grams.append(xc @ xc.T)
    out = np.empty((len(grams), len(grams)))
    for i, a in enumerate(grams):
        for j, b in enumerate(grams):
            out[i, j] = (a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b))
    return out


def test_cka_matrix_in_row_chunks_equals_the_gram_form():
    g = _gen(2)
    base = torch.randn(50, 4, generator=g)
    layers = [base, base @ torch.randn(4, 6, generator=g) + 0.1 * torch.randn(50, 6, generator=g),
              torch.tanh(base @ torch.randn(4, 5, generator=g)), torch.randn(50, 3, generator=g) + 7.0]
    reference = _cka_gram_form(layers)
    for chunk in (1, 7, 50, 4096):  # N = 50 > every width: the feature-space path
        m = cka_matrix(layers, chunk=chunk)
        np.testing.assert_allclose(m.numpy(), reference, rtol=1e-6, atol=1e-6)
    # a constant layer (round-off after centring) is NaN against the others, chunked or not
    constant = torch.randn(1, 4, generator=g, dtype=torch.float64).repeat(50, 1)
    m = cka_matrix([layers[0], constant], chunk=7)
    assert math.isnan(float(m[0, 1])) and float(m[1, 1]) == 1.0
    with pytest.raises(ValueError, match="chunk"):
        cka_matrix(layers, chunk=0)


def test_write_npz_streams_arrays_that_np_load_reads(tmp_path):
    arrays = {"l1_cls": np.random.default_rng(0).standard_normal((30, 4)).astype(np.float16),
              "labels": np.arange(30), "zeros": np.zeros((1000, 8), dtype=np.float32)}
    with open(tmp_path / "a.npz", "wb") as f:
        write_npz(f, ((k, v) for k, v in arrays.items()))  # a generator: one array at a time
    with np.load(tmp_path / "a.npz") as data:
        assert sorted(data.files) == sorted(arrays)
        for k, v in arrays.items():
            assert data[k].dtype == v.dtype and np.array_equal(data[k], v)
    assert (tmp_path / "a.npz").stat().st_size < arrays["zeros"].nbytes / 10  # compressed


# ----------------------------------------------------------------------------------------- callback

def test_callback_gives_knn_and_the_views_exactly_max_samples_points(tmp_path, monkeypatch):
    from workbench.data.shapes import ShapesParams, load_shapes

    module, config = _tiny_module(depth=1)
    data = load_shapes(ShapesParams(num_images=150), cache_dir=None)
    c = config.diagnostics
    c.max_samples, c.token_images, c.probe_steps, c.knn_k = 60, 8, 5, 5
    seen = []
    original = DiagnosticsCallback._two_views

    def spy(self, module, images, widths, *rest):
        seen.append(images.shape[0])
        return original(self, module, images, widths, *rest)

    monkeypatch.setattr(DiagnosticsCallback, "_two_views", spy)
    trainer = SimpleNamespace(datamodule=SimpleNamespace(splits={"probe": data.train}, data=data), is_global_zero=True)
    DiagnosticsCallback(tmp_path, c, seed=4).run(trainer, module, 0)
    assert seen == [60]
    table = pd.read_csv(tmp_path / "diagnostics.csv")
    pooled, _ = layer_embeddings(module, data.train.images)
    idx = subsample_indices(150, 60, seed=4)
    for (layer, pool), z in pooled.items():
        row = table[(table.layer == layer) & (table.pool == pool) & (table.metric == "knn_acc")]
        expected = knn_accuracy(z[idx], data.train.labels[idx], k=5, seed=4)
        assert len(row) == 1 and abs(float(row["value"].iloc[0]) - expected) < 1e-12
    assert {"invariance", "alignment", "lidar"} <= set(table["metric"])


# ------------------------------------------------------------------------------------------- config

@pytest.mark.parametrize("override, field", [
    ("diagnostics.max_samples=5", "diagnostics.max_samples"),
    ("diagnostics.max_samples=true", "diagnostics.max_samples"),
    ("diagnostics.pools=[max]", "diagnostics.pools"),
    ("diagnostics.pools=[]", "diagnostics.pools"),
    ("diagnostics.knn_k=0", "diagnostics.knn_k"),
    ("diagnostics.probe_steps=0", "diagnostics.probe_steps"),
    ("diagnostics.token_images=-1", "diagnostics.token_images"),
    ("diagnostics.every_n_epochs=-1", "diagnostics.every_n_epochs"),
    ("diagnostics.monitor_every_n_steps=-5", "diagnostics.monitor_every_n_steps"),
    ("diagnostics.coherence=[shape]", "diagnostics.coherence"),
])
def test_invalid_diagnostics_values_name_the_field(override, field):
    with pytest.raises(ConfigError) as info:
        wb.make_config("supervised", [override])
    assert info.value.field == field and "invalid" in str(info.value)


def test_default_cap_and_a_valid_override():
    assert wb.RunConfig().diagnostics.max_samples == 5000
    assert wb.make_config("supervised", ["diagnostics.max_samples=10"]).diagnostics.max_samples == 10


def test_bench_memory_reports_the_peak_and_each_phase():
    from workbench.bench.memory import measure

    result = measure(n=120, depth=1, width=32, max_samples=50)
    assert result["probe"] == 120 and result["max_samples"] == 50 and result["depth"] == 1
    # seconds and cpu_s are rounded to 0.1 s, so > 0 needs 0.05 s: measured 1.3-1.6 s wall and 0.4 s CPU
    # with one thread, 35-46 s wall and 11 s CPU with two on a loaded machine (two runs each), 8x or more
    assert 0 < result["before_mib"] <= result["peak_mib"] and result["seconds"] > 0 and result["cpu_s"] > 0
    assert {"embed", "views", "metrics", "cka", "save"} <= set(result["phases"])
    assert all(0 < p["peak_mib"] <= result["peak_mib"] + 1 for p in result["phases"].values())
