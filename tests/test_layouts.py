"""Aligned UMAP layouts: the measures against hand-worked cases, the computation's contract
(shapes, determinism, alignment), the run cache and the argument checks.

UMAP fits are few and small (300 points); the first one in the process pays numba's compilation.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import workbench.analysis.layouts as layouts_module
from workbench.analysis.layouts import (
    Layouts,
    aligned_order,
    cache_keys,
    compute_layouts,
    consecutive_displacement,
    exact_knn,
    layout_displacement,
    layout_parents,
    layouts_from_embeddings,
    normalise_layout,
)
from workbench.errors import ConfigError
from workbench.runs import Run

N = 300


def clusters(n: int = N, dims: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Five Gaussian clusters in ``dims`` dimensions: (points, labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, dims)) * 3
    labels = rng.integers(0, 5, n)
    return (centres[labels] + rng.normal(size=(n, dims))).astype(np.float32), labels


def drifting_layers(layers: int = 3, step: float = 0.05, seed: int = 0) -> dict:
    """The same points at every layer, each layer a small perturbation of the one before."""
    x, _ = clusters(seed=seed)
    rng = np.random.default_rng(seed + 1)
    out = {}
    for l in range(layers):
        out[(0, l)] = x.copy()
        x = x + step * rng.normal(size=x.shape).astype(np.float32)
    return out


# ---- measures, hand-worked -------------------------------------------------------------------


def test_normalise_layout_centres_and_scales_to_unit_rms_radius():
    # centre (1, 1); offsets (+-1, +-1) have radius sqrt(2), so the result is offsets / sqrt(2)
    c = normalise_layout(np.array([[0, 0], [2, 2], [0, 2], [2, 0]], dtype=np.float64))
    s = 1 / math.sqrt(2)
    np.testing.assert_allclose(c, [[-s, -s], [s, s], [-s, s], [s, -s]], atol=1e-6)
    assert c.dtype == np.float32


def test_layout_displacement_hand_case():
    # a: (-1, 0), (1, 0) after normalising; b: (0, -1), (0, 1). Each point moves sqrt(2).
    a = np.array([[0.0, 0.0], [2.0, 0.0]])
    b = np.array([[0.0, 0.0], [0.0, 2.0]])
    assert layout_displacement(a, b) == pytest.approx(math.sqrt(2))
    # scale and offset do not count: 10 a + 3 is the same picture
    assert layout_displacement(a, 10 * a + 3) == pytest.approx(0.0, abs=1e-6)
    # a reflection does: (-1, 0), (1, 0) -> (1, 0), (-1, 0) moves each point 2
    assert layout_displacement(a, -a) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="same points"):
        layout_displacement(a, np.zeros((3, 2)))


def test_consecutive_displacement_along_layers_and_epochs():
    a = np.array([[0.0, 0.0], [2.0, 0.0]])  # normalised (-1, 0), (1, 0)
    b = np.array([[0.0, 0.0], [0.0, 2.0]])  # normalised (0, -1), (0, 1): sqrt(2) from a
    coords = {(0, 0): a, (0, 1): a, (0, 2): b,  # layer steps: 0 and sqrt(2)
              (5, 0): -a, (5, 1): a, (5, 2): b}  # layer steps: 2 and sqrt(2)
    assert consecutive_displacement(coords, "layer") == pytest.approx((0 + math.sqrt(2) + 2 + math.sqrt(2)) / 4)
    # epoch steps, one per layer: 2, 0, 0
    assert consecutive_displacement(coords, "epoch") == pytest.approx(2 / 3)
    assert math.isnan(consecutive_displacement({(0, 0): a}, "epoch"))
    with pytest.raises(ConfigError, match="along"):
        consecutive_displacement(coords, "time")


def test_exact_knn_hand_case():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    idx, dist = exact_knn(x, 3)
    np.testing.assert_array_equal(idx, [[0, 1, 2], [1, 0, 2], [2, 1, 0], [3, 2, 1]])
    np.testing.assert_allclose(dist, [[0, 1, 3], [0, 1, 2], [0, 2, 3], [0, 4, 6]])
    assert idx.dtype == np.int32 and dist.dtype == np.float32
    # duplicates: each point still comes first in its own list; chunking does not change anything
    d = np.array([[1.0, 1.0], [1.0, 1.0], [5.0, 4.0]])
    idx, dist = exact_knn(d, 2, chunk=1)
    np.testing.assert_array_equal(idx, [[0, 1], [1, 0], [2, 0]])
    np.testing.assert_allclose(dist, [[0, 0], [0, 0], [0, 5]])


def test_parents_and_aligned_order_on_a_grid():
    keys = [(e, l) for e in (0, 4, 8) for l in (0, 1, 2)]
    parents = layout_parents(keys)
    assert parents[(0, 0)] is None
    assert parents[(0, 1)] == (0, 0) and parents[(0, 2)] == (0, 1)  # the first epoch: a chain of layers
    assert parents[(4, 0)] == (0, 0) and parents[(8, 2)] == (4, 2)  # later epochs: the same layer before
    # an irregular set: layer 3 exists only at epoch 4, so it starts from layer 1 of epoch 4
    assert layout_parents([(0, 1), (4, 1), (4, 3)])[(4, 3)] == (4, 1)
    assert aligned_order(keys) == [(0, 0), (0, 1), (0, 2), (4, 2), (4, 1), (4, 0), (8, 0), (8, 1), (8, 2)]


def test_procrustes_undoes_a_rotation_and_reflection():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(50, 2))
    theta = 0.7
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    moved = 3 * (target @ rotation) * np.array([1, -1]) + 5  # rotate, reflect, scale, shift
    np.testing.assert_allclose(layouts_module._procrustes(moved, target), normalise_layout(target), atol=1e-5)


# ---- the computation -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drifting():
    return drifting_layers()


@pytest.fixture(scope="module")
def independent(drifting):
    return layouts_from_embeddings(drifting, method="independent", n_neighbors=10, progress=False)


@pytest.fixture(scope="module")
def warm(drifting):
    return layouts_from_embeddings(drifting, method="warm", n_neighbors=10, progress=False)


def test_shapes_dtypes_and_normalisation(warm, drifting):
    assert set(warm) == set(drifting)
    for c in warm.values():
        assert c.shape == (N, 2) and c.dtype == np.float32 and np.isfinite(c).all()
        np.testing.assert_allclose(c.mean(0), 0, atol=1e-5)
        assert np.sqrt((c.astype(np.float64) ** 2).sum(1).mean()) == pytest.approx(1, abs=1e-5)


def test_same_seed_same_layouts(warm, drifting):
    again = layouts_from_embeddings(drifting, method="warm", n_neighbors=10, progress=False)
    for k in warm:
        np.testing.assert_array_equal(warm[k], again[k])


def test_warm_layouts_move_points_less_than_independent_ones(independent, warm):
    def moved(coords):  # mean point displacement between layers, centred and scaled, no rotation
        steps = []
        for l in (1, 2):
            a, b = coords[(0, l - 1)].astype(np.float64), coords[(0, l)].astype(np.float64)
            a, b = a - a.mean(0), b - b.mean(0)
            a, b = a / np.sqrt((a ** 2).sum(1).mean()), b / np.sqrt((b ** 2).sum(1).mean())
            steps.append(np.linalg.norm(a - b, axis=1).mean())
        return np.mean(steps)

    # The claim: a warm-started layout moves points less than an independent one. The ratio varies
    # with the data seed far more than with the machine: warm / independent on drifting_layers(seed)
    # for seeds 0-5 was 0.22-0.69 (0.67 for seed 0) with WARM_LEARNING_RATE = 0.25, and 0.34-0.90
    # with UMAP's default 1.0, where another machine measured 0.89 for seed 0 (both numbers from
    # numba's code for the CPU at hand). PCA-initialised independent layouts of this small synthetic
    # case are often smooth already; on a trained run's layers the ratio is about 0.35 (README).
    assert moved(warm) < 0.9 * moved(independent)
    assert moved(warm) == pytest.approx(consecutive_displacement(warm), rel=1e-5)


def test_procrustes_uses_the_independent_layouts_rotated(independent, drifting):
    rotated = layouts_from_embeddings(drifting, method="procrustes", n_neighbors=10, progress=False)
    np.testing.assert_array_equal(rotated[(0, 0)], independent[(0, 0)])  # the root is not moved
    for k in rotated:  # a rotation keeps every pairwise distance
        a, b = rotated[k].astype(np.float64), independent[k].astype(np.float64)
        np.testing.assert_allclose(np.linalg.norm(a[:, None] - a[None], axis=-1),
                                   np.linalg.norm(b[:, None] - b[None], axis=-1), atol=1e-4)
    # Procrustes minimises the sum of squared displacements to the parent, and not rotating is one of
    # the rotations it considers, so each step's root-mean-square displacement can only shrink (exact,
    # up to float32 rounding). The mean displacement (consecutive_displacement) usually shrinks too,
    # but need not: for seed 0 it was 0.324 rotated against 0.320 independent on one machine.
    def rms_step(coords, l):
        a, b = normalise_layout(coords[(0, l - 1)]), normalise_layout(coords[(0, l)])
        return float(np.sqrt(((a.astype(np.float64) - b) ** 2).sum(1).mean()))

    for l in (1, 2):
        assert rms_step(rotated, l) <= rms_step(independent, l) + 1e-5


def test_pca_pre_reduction(monkeypatch, drifting):
    seen = []
    real = layouts_module._umap
    monkeypatch.setattr(layouts_module, "_umap", lambda x, *a: seen.append(x.shape) or real(x, *a))
    layouts_from_embeddings({(0, 0): drifting[(0, 0)]}, method="independent", pca_dims=8, n_neighbors=10,
                            progress=False, n_epochs=10)
    layouts_from_embeddings({(0, 0): drifting[(0, 0)][:, :6]}, method="independent", pca_dims=8, n_neighbors=10,
                            progress=False, n_epochs=10)
    assert seen == [(N, 8), (N, 6)]  # 64 -> 8 dimensions; 6 <= 8 is left alone


@pytest.mark.slow
def test_aligned_layouts_move_points_less_than_independent_ones(independent, drifting):
    aligned = layouts_from_embeddings(drifting, method="aligned", n_neighbors=10, progress=False)
    assert all(c.shape == (N, 2) and c.dtype == np.float32 for c in aligned.values())
    # aligned / independent on drifting_layers(seed), seeds 0-5: 0.06-0.19
    assert consecutive_displacement(aligned) < 0.5 * consecutive_displacement(independent)


# ---- runs and the cache ----------------------------------------------------------------------


def write_run(path, epochs=(0, 2), layers=(0, 1, 2), n=N, probe=True) -> Run:
    """A run directory holding only what layouts read: embeddings (and the probe set's names)."""
    x, labels = clusters(n)
    factors = np.stack([labels, np.arange(n) % 3], axis=1).astype(np.float32)
    (path / "embeddings").mkdir(parents=True)
    (path / "config.yaml").write_text("name: run\n")  # load_run only checks that it exists
    for e in epochs:
        arrays = {"labels": labels, "factors": factors, "ids": np.arange(n)}
        for l in layers:
            arrays[f"l{l}_mean"] = (x + 0.05 * (e + l)).astype(np.float16)
            if l > 0:
                arrays[f"l{l}_cls"] = (x - 0.05 * (e + l)).astype(np.float16)
        np.savez(path / "embeddings" / f"epoch={e:03d}.npz", **arrays)
    if probe:
        np.savez(path / "embeddings" / "probe.npz", images=np.zeros((n, 1, 2, 2), np.uint8), labels=labels,
                 factors=factors, ids=np.arange(n))
        spec = {"kind": "categorical", "level": "mid", "description": "", "values": [], "range": None}
        (path / "embeddings" / "probe.json").write_text(json.dumps({
            "classes": ["a", "b", "c", "d", "e"], "factors": [{"name": "shape", **spec}, {"name": "part", **spec}]}))
    return Run(path)


def counting_umap(monkeypatch) -> list:
    calls = []
    real = layouts_module._umap
    monkeypatch.setattr(layouts_module, "_umap", lambda *a: calls.append(1) or real(*a))
    return calls


def test_compute_layouts_fills_the_container_and_caches(tmp_path, monkeypatch):
    run = write_run(tmp_path / "run")
    calls = counting_umap(monkeypatch)
    kwargs = dict(layers=[1, 2], n_neighbors=10, max_points=200, progress=False, n_epochs=30)
    first = compute_layouts(run, **kwargs)
    assert isinstance(first, Layouts) and len(calls) == 4
    assert first.epochs == [0, 2] and first.layers == [1, 2] and first.pool == "mean"
    # the sample cap: 200 distinct probe rows, sorted, the same in every layout
    assert len(first.ids) == 200 and len(set(first.ids)) == 200 and np.all(np.diff(first.ids) > 0)
    assert all(c.shape == (200, 2) and c.dtype == np.float32 for c in first.coords.values())
    _, labels = clusters()
    np.testing.assert_array_equal(first.labels, labels[first.ids])
    assert first.label_names == ["a", "b", "c", "d", "e"] and first.factor_names == ["shape", "part"]
    np.testing.assert_array_equal(first.factors[:, 1], first.ids % 3)
    assert first.params["method"] == "warm" and first.params["points"] == 200
    files = sorted(p.name for p in (tmp_path / "run" / "layouts").glob("*.npz"))
    assert len(files) == 4 and files[0].startswith("epoch=000_layer=01_mean_warm_")

    # a hit: read back, nothing recomputed, the same numbers
    again = compute_layouts(str(tmp_path / "run"), **kwargs)  # a path works as well as a Run
    assert len(calls) == 4
    for k in first.coords:
        np.testing.assert_array_equal(first.coords[k], again.coords[k])

    # one file lost: only that layout is computed again (from its cached parent), to the same numbers
    next((tmp_path / "run" / "layouts").glob("epoch=002_layer=02_*.npz")).unlink()
    again = compute_layouts(run, **kwargs)
    assert len(calls) == 5
    np.testing.assert_array_equal(first.coords[(2, 2)], again.coords[(2, 2)])

    # a miss: another parameter computes every layout afresh, beside the old files
    compute_layouts(run, **{**kwargs, "min_dist": 0.3})
    assert len(calls) == 9 and len(list((tmp_path / "run" / "layouts").glob("*.npz"))) == 8

    # cache=False neither reads nor writes
    compute_layouts(run, **kwargs, cache=False)
    assert len(calls) == 13 and len(list((tmp_path / "run" / "layouts").glob("*.npz"))) == 8


def test_compute_layouts_without_probe_names_and_without_cap(tmp_path):
    run = write_run(tmp_path / "run", epochs=(3,), layers=(1,), n=40, probe=False)
    out = compute_layouts(run, pool="cls", n_neighbors=5, max_points=100, progress=False, cache=False, n_epochs=10)
    np.testing.assert_array_equal(out.ids, np.arange(40))  # fewer points than the cap: all of them
    assert out.label_names is None and out.factor_names == ["factor0", "factor1"]
    assert list(out.coords) == [(3, 1)] and out.pool == "cls"


def test_cache_keys_follow_what_a_layout_depends_on():
    rng = np.random.default_rng(0)
    data = {(e, l): rng.normal(size=(20, 4)).astype(np.float32) for e in (0, 1) for l in (0, 1)}
    params = {"method": "warm", "min_dist": 0.1}
    keys = cache_keys(data, params)
    assert len(set(keys.values())) == 4
    # adding a later epoch changes no existing key: nothing before it started from it
    more = {**data, (2, 0): data[(1, 0)], (2, 1): data[(1, 1)]}
    assert {k: v for k, v in cache_keys(more, params).items() if k in keys} == keys
    # changing layer 0 of epoch 0 changes every warm key (all hang off it), but only its own
    # independent key
    changed = {**data, (0, 0): data[(0, 0)] + 1}
    assert all(cache_keys(changed, params)[k] != keys[k] for k in keys)
    independent = cache_keys(data, {**params, "method": "independent"})
    changed_independent = cache_keys(changed, {**params, "method": "independent"})
    assert [k for k in keys if changed_independent[k] != independent[k]] == [(0, 0)]
    # aligned layouts are fitted jointly: any input changes all of them
    aligned = cache_keys(data, {**params, "method": "aligned"})
    changed_aligned = cache_keys({**data, (1, 1): data[(1, 1)] + 1}, {**params, "method": "aligned"})
    assert all(changed_aligned[k] != aligned[k] for k in keys)
    assert cache_keys(data, {**params, "min_dist": 0.2}) != keys


# ---- argument checks -------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, field, hint", [
    ({"method": "tsne"}, "method", "warm, independent, procrustes, aligned"),
    ({"pool": "max"}, "pool", "['cls', 'mean']"),
    ({"epochs": [0, 5]}, "epochs", "[0, 2]"),
    ({"layers": [0, 7]}, "layers", "[0, 1, 2]"),
    ({"pool": "cls", "layers": [0]}, "layers", "[1, 2]"),
    ({"max_points": 10}, "max_points", "n_neighbors + 1 = 16"),
    ({"n_neighbors": 1}, "n_neighbors", ">= 2"),
    ({"pca_dims": 1}, "pca_dims", ">= 2"),
    ({"min_dist": -0.5}, "min_dist", ">= 0"),
    ({"n_epochs": 0}, "n_epochs", ">= 1"),
    ({"seed": -1}, "seed", ">= 0"),
])
def test_compute_layouts_rejects_bad_arguments(tmp_path, kwargs, field, hint):
    run = write_run(tmp_path / "run")
    with pytest.raises(ConfigError, match=field) as info:
        compute_layouts(run, progress=False, **kwargs)
    assert hint in str(info.value)
    assert not (tmp_path / "run" / "layouts").exists()


def test_compute_layouts_needs_saved_embeddings(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="save_embeddings"):
        compute_layouts(Run(tmp_path / "empty"), progress=False)
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        compute_layouts(tmp_path / "empty", progress=False)


def test_layouts_from_embeddings_rejects_bad_inputs():
    x = np.zeros((20, 4), np.float32)
    with pytest.raises(ConfigError, match="n_neighbors.*at most 19"):
        layouts_from_embeddings({(0, 0): x}, n_neighbors=20, progress=False)
    with pytest.raises(ConfigError, match="same N points"):
        layouts_from_embeddings({(0, 0): x, (0, 1): x[:10]}, n_neighbors=5, progress=False)
    with pytest.raises(ConfigError, match="NaN"):
        layouts_from_embeddings({(0, 0): np.full((20, 4), np.nan)}, n_neighbors=5, progress=False)
    with pytest.raises(ConfigError, match="non-empty"):
        layouts_from_embeddings({}, progress=False)
    with pytest.raises(ConfigError, match="N x D"):
        layouts_from_embeddings({(0, 0): np.zeros(20)}, n_neighbors=5, progress=False)


def test_layout_benchmark_rows_on_a_small_run(tmp_path):
    from workbench.analysis.layouts import format_benchmark, layout_benchmark

    run = write_run(tmp_path / "run", n=120)
    rows = layout_benchmark(run=run, methods=["independent", "warm"], points=100, trust_points=60, epochs=2)
    assert [r["method"] for r in rows] == ["independent", "warm"]
    for r in rows:
        assert r["layouts"] == 6 and r["points"] == 100 and r["epochs"] == [0, 2] and r["layers"] == [0, 1, 2]
        assert 0.5 < r["trustworthiness"] <= 1.0 and r["seconds"] > 0
        assert 0 <= r["layer_displacement"] < 3 and 0 <= r["epoch_displacement"] < 3
    table = format_benchmark(rows).splitlines()
    assert len(table) == 4 and table[2].startswith("| independent | 6 | 100 |")
    with pytest.raises(ConfigError, match="epochs"):
        layout_benchmark(run=run, epochs=3)
    with pytest.raises(ConfigError, match="methods.*umap-learn"):
        layout_benchmark(run=run, methods=["tsne"])


def test_compute_layouts_reads_only_the_laid_out_arrays(tmp_path, monkeypatch):
    run = write_run(tmp_path / "run")
    asked = []
    real = Run.embeddings
    monkeypatch.setattr(Run, "embeddings", lambda self, epoch, keys=None: asked.append(keys) or real(self, epoch, keys))
    compute_layouts(run, layers=[1, 2], pool="cls", n_neighbors=10, max_points=100, progress=False, cache=False,
                    n_epochs=10)
    # never a whole epoch file: one array per (epoch, layer) of the chosen pool, then the row metadata
    assert asked == [["l1_cls"], ["l2_cls"], ["l1_cls"], ["l2_cls"], ["ids", "labels", "factors"]]


def test_compute_layouts_rejects_epochs_of_different_probe_sets(tmp_path):
    run = write_run(tmp_path / "run", epochs=(0,), layers=(1,), n=40)
    arrays = run.embeddings(0)
    np.savez(tmp_path / "run" / "embeddings" / "epoch=001.npz", **{k: v[:30] for k, v in arrays.items()})
    with pytest.raises(ValueError, match="40 at epoch 0, 30 at epoch 1 layer 1"):
        compute_layouts(run, n_neighbors=5, progress=False, cache=False)


def test_layout_benchmark_needs_saved_embeddings(tmp_path):
    from workbench.analysis.layouts import layout_benchmark

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="save_embeddings"):
        layout_benchmark(run=Run(tmp_path / "empty"), methods=["warm"])
