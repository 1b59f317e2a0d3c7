"""2-D layouts (UMAP) of the probe embeddings, for every layer and saved epoch, aligned so a point
moves smoothly from one layer to the next and from one epoch to the next.

A UMAP layout is only defined up to rotation, reflection and a rearrangement of its clusters: two
independent layouts of nearly the same data can look unrelated, and a slider over layers then
shows points jumping about for no reason. The methods here differ in how they tie neighbouring
layouts together:

- ``"independent"``: umap-learn per layout, each started from its first two principal components
  (the baseline: nothing ties them).
- ``"procrustes"``: independent layouts, each rotated / reflected onto its neighbour's (free, but
  a rigid motion cannot undo a rearrangement of clusters).
- ``"warm"`` (the default): each layout starts its optimisation from its neighbour's final layout,
  with a lower learning rate and fewer epochs, so what did not need to move stays put.
- ``"aligned"``: umap-learn's ``AlignedUMAP``, which optimises all layouts jointly with a penalty on
  every point's displacement between consecutive layouts. It starts from umap-learn's spectral
  initialisation, which is not exactly reproducible when a neighbour graph has several components.

"Neighbour" follows the (epoch, layer) grid: the layers of the first epoch form a chain (layer l
starts from layer l-1), and every later epoch's layer l starts from the previous epoch's layer l.

    from workbench.analysis.layouts import compute_layouts

    layouts = compute_layouts("runs/<name>")   # cached under runs/<name>/layouts/
    layouts.coords[(8, 3)]                     # N x 2: epoch 8, layer 3

Every layout is centred and scaled to unit root-mean-square radius, so a figure can keep its axes
fixed across layers and epochs. ``python -m workbench.analysis.layouts`` measures the methods' time,
trustworthiness and smoothness (:func:`layout_benchmark`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import numbers
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..atomic import atomic_open
from ..errors import ConfigError, check_one_of

METHODS = ("warm", "independent", "procrustes", "aligned")
DEFAULT_METHOD = "warm"
BASELINE = "umap-learn"  # the benchmark's reference: umap-learn's defaults on the raw embeddings
# Exact neighbours cost N^2 distances: about 0.6 s at 5,000 points (as fast as UMAP's approximate
# search, NN-descent), growing quadratically; beyond this many points NN-descent takes over.
EXACT_KNN_MAX_POINTS = 20000
# Optimisation epochs of a layout started from its neighbour's: it starts near its answer, so fewer
# than UMAP's 500 (below 10,000 points) suffice; measured on a depth-6 run: half the time, the same
# trustworthiness to 0.001, slightly less movement between layers.
WARM_EPOCHS = 200
# UMAP's initial learning rate for a layout started from its neighbour's (UMAP's own default, 1.0,
# for one started from scratch). At 1.0 the first epochs rescale and re-optimise the start almost
# from nothing; a lower rate keeps what did not need to move in place (measurements in the README,
# "Layouts").
WARM_LEARNING_RATE = 0.25
# Bumped whenever the computation changes, so stale cache files are never read.
_CACHE_VERSION = 2

Key = tuple[int, int]


@dataclass
class Layouts:
    """Aligned 2-D coordinates of the same probe points at several (epoch, layer) pairs.

    coords: (epoch, layer) -> N x 2 float32, the rows in the order of ``ids``.
    ids: N indices into the run's probe set (the same points in every layout).
    labels: N class indices or None; label_names: their names (or None).
    factors: N x F float array of ground-truth factors or None; factor_names: their F names.
    pool: which pooled embedding was laid out ("mean" or "cls").
    params: the parameters that produced the layouts (part of the cache key).
    """

    coords: dict[tuple[int, int], np.ndarray]
    ids: np.ndarray
    labels: np.ndarray | None = None
    label_names: list[str] | None = None
    factors: np.ndarray | None = None
    factor_names: list[str] = field(default_factory=list)
    pool: str = "mean"
    params: dict = field(default_factory=dict)

    @property
    def epochs(self) -> list[int]:
        return sorted({e for e, _ in self.coords})

    @property
    def layers(self) -> list[int]:
        return sorted({l for _, l in self.coords})


# ---- measures --------------------------------------------------------------------------------


def normalise_layout(coords: np.ndarray) -> np.ndarray:
    """Centre a layout at the origin and scale it to unit root-mean-square radius (float32).

    Rotation is left alone: it is part of what a reader sees. Rows of NaN (points UMAP could not
    place) stay NaN and are ignored by the mean and the scale.
    """
    c = np.asarray(coords, dtype=np.float64)
    c = c - np.nanmean(c, axis=0)
    radius = math.sqrt(np.nanmean(np.sum(c * c, axis=1)))
    return (c / radius if radius > 0 else c).astype(np.float32)


def layout_displacement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance a point moves between two layouts of the same points, after
    :func:`normalise_layout` of each (no rotation): 0 for the same picture at any scale or offset,
    about 1.4 for two unrelated layouts of the same extent.

    >>> layout_displacement(np.array([[0., 0.], [2., 0.]]), np.array([[5., 5.], [9., 5.]]))
    0.0
    """
    a, b = normalise_layout(a), normalise_layout(b)
    if a.shape != b.shape:
        raise ValueError(f"layouts of different shapes {a.shape} and {b.shape}: they must hold the same points")
    return float(np.nanmean(np.linalg.norm(a.astype(np.float64) - b, axis=1)))


def consecutive_displacement(coords: dict[Key, np.ndarray], along: str = "layer") -> float:
    """Mean :func:`layout_displacement` between consecutive layers of each epoch (``along="layer"``)
    or consecutive epochs of each layer (``along="epoch"``): how much a slider makes points jump.
    NaN when there is no consecutive pair."""
    if along not in ("layer", "epoch"):
        raise ConfigError("along", along, "'layer' or 'epoch'")
    groups: dict[int, list[Key]] = {}
    for e, l in coords:
        groups.setdefault(e if along == "layer" else l, []).append((e, l))
    values = [layout_displacement(coords[p], coords[q])
              for keys in groups.values() for p, q in zip(sorted(keys), sorted(keys)[1:])]
    return float(np.mean(values)) if values else float("nan")


# ---- the computation -------------------------------------------------------------------------


def layout_parents(keys: Sequence[Key]) -> dict[Key, Key | None]:
    """Which layout each (epoch, layer) layout starts from (warm) or is rotated onto (procrustes).

    The same layer at the previous epoch present, else the previous layer at the same epoch, else
    None (a root, laid out from scratch). On a full grid: the first epoch's layers form a chain and
    every later epoch hangs off it layer by layer. A parent always sorts before its child.
    """
    keys = sorted(set(keys))
    parents: dict[Key, Key | None] = {}
    for e, l in keys:
        earlier_epochs = [k for k in keys if k[1] == l and k[0] < e]
        earlier_layers = [k for k in keys if k[0] == e and k[1] < l]
        parents[(e, l)] = max(earlier_epochs) if earlier_epochs else max(earlier_layers) if earlier_layers else None
    return parents


def aligned_order(keys: Sequence[Key]) -> list[Key]:
    """The sequence AlignedUMAP aligns (it only knows a chain): epochs in order, layers ascending in
    the first epoch, descending in the next, and so on, so consecutive layouts are always grid
    neighbours (a boustrophedon)."""
    epochs = sorted({e for e, _ in keys})
    order: list[Key] = []
    for i, e in enumerate(epochs):
        layers = sorted(l for ee, l in keys if ee == e)
        order += [(e, l) for l in (layers if i % 2 == 0 else layers[::-1])]
    return order


def _reduce(x: np.ndarray, pca_dims: int, seed: int) -> np.ndarray:
    """PCA to ``pca_dims`` (float32): UMAP's neighbour search is faster and less noisy in fewer
    dimensions, and the dropped directions hold little variance. Skipped when D <= pca_dims."""
    x = np.asarray(x, dtype=np.float32)
    dims = min(pca_dims, len(x))
    if x.shape[1] <= dims:
        return x
    from sklearn.decomposition import PCA

    return PCA(n_components=dims, svd_solver="full", random_state=seed).fit_transform(x).astype(np.float32)


def exact_knn(x: np.ndarray, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean k nearest neighbours of every row, the row itself first (at distance 0), as
    UMAP expects them: (N x k int32 indices, N x k float32 distances).

    At a few thousand points the full distance matrix costs no more than UMAP's approximate search,
    and it is exact and the same on every machine. Distances are computed in float64 in row chunks.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    sq = np.einsum("ij,ij->i", x, x)
    indices = np.empty((n, k), dtype=np.int32)
    distances = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (x[start:stop] @ x.T)
        np.maximum(d2, 0.0, out=d2)  # rounding can make a tiny distance negative
        rows = np.arange(stop - start)
        d2[rows, start + rows] = -1.0  # the point itself first, even among duplicates
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d2, part, axis=1), axis=1, kind="stable")
        nearest = np.take_along_axis(part, order, axis=1)
        indices[start:stop] = nearest
        distances[start:stop] = np.sqrt(np.maximum(np.take_along_axis(d2, nearest, axis=1), 0.0))
    return indices, distances


def _umap(x: np.ndarray, init, n_neighbors: int, min_dist: float, seed: int, n_epochs: int | None,
          learning_rate: float = 1.0) -> np.ndarray:
    import umap

    knn = exact_knn(x, n_neighbors) if len(x) <= EXACT_KNN_MAX_POINTS else (None, None, None)
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, n_components=2, init=init,
                        n_epochs=n_epochs, random_state=seed, n_jobs=1, precomputed_knn=knn,
                        learning_rate=learning_rate)
    with warnings.catch_warnings():
        # The neighbours are given without a search index: only ``transform`` of new points (never
        # used here) would need it.
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        # Well-separated clusters make a disconnected graph; UMAP lays its components out apart.
        warnings.filterwarnings("ignore", message=".*not fully connected.*")
        return reducer.fit_transform(x).astype(np.float32)


def _procrustes(coords: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotate / reflect ``coords`` (both centred) onto ``target``: the orthogonal R minimising
    ||coords R - target|| is U V^T from the SVD of coords^T target."""
    a, b = normalise_layout(coords).astype(np.float64), normalise_layout(target).astype(np.float64)
    ok = np.isfinite(a).all(1) & np.isfinite(b).all(1)
    u, _, vt = np.linalg.svd(a[ok].T @ b[ok])
    return (a @ (u @ vt)).astype(np.float32)


def _aligned(xs: list[np.ndarray], n_neighbors: int, min_dist: float, seed: int, n_epochs: int | None) -> list[np.ndarray]:
    import umap

    n = len(xs[0])
    identity = {i: i for i in range(n)}
    reducer = umap.AlignedUMAP(n_neighbors=n_neighbors, min_dist=min_dist, n_epochs=n_epochs, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")  # a seed makes UMAP single-threaded
        reducer.fit(list(xs), relations=[identity] * (len(xs) - 1))
    return [np.asarray(e, dtype=np.float32) for e in reducer.embeddings_]


def _check_params(method: str, pca_dims: int, n_neighbors: int, min_dist: float, seed: int,
                  n_epochs: int | None) -> None:
    check_one_of("method", method, METHODS)
    if not isinstance(n_neighbors, (int, np.integer)) or n_neighbors < 2:
        raise ConfigError("n_neighbors", n_neighbors, "an integer >= 2")
    if not isinstance(pca_dims, (int, np.integer)) or pca_dims < 2:
        raise ConfigError("pca_dims", pca_dims, "an integer >= 2 (2-D layouts need at least 2 dimensions)")
    if not (isinstance(min_dist, numbers.Real) and 0.0 <= min_dist):
        raise ConfigError("min_dist", min_dist, "a number >= 0 (UMAP's usual range is 0.0 to 0.99)")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError("seed", seed, "an integer >= 0")
    if n_epochs is not None and (not isinstance(n_epochs, (int, np.integer)) or n_epochs < 1):
        raise ConfigError("n_epochs", n_epochs, "None (UMAP's default) or an integer >= 1")


def _check_embeddings(embeddings: dict[Key, np.ndarray], n_neighbors: int) -> None:
    if not embeddings:
        raise ConfigError("embeddings", {}, "a non-empty dict (epoch, layer) -> N x D array")
    sizes = {}
    for key, x in embeddings.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ConfigError("embeddings", key, "keys that are (epoch, layer) pairs")
        if np.ndim(x) != 2:
            raise ConfigError(f"embeddings[{key}]", f"array of shape {np.shape(x)}", "an N x D array")
        if not np.isfinite(x).all():
            raise ConfigError(f"embeddings[{key}]", "an array with NaN or inf", "finite values (did training diverge?)")
        sizes[key] = len(x)
    if len(set(sizes.values())) > 1:
        raise ConfigError("embeddings", sizes, "the same N points in every layout")
    n = next(iter(sizes.values()))
    if n < n_neighbors + 1:
        raise ConfigError("n_neighbors", n_neighbors, f"fewer than the number of points ({n}): at most {n - 1}")


def layouts_from_embeddings(
    embeddings: dict[Key, np.ndarray],
    method: str = DEFAULT_METHOD,
    pca_dims: int = 50,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    n_epochs: int | None = None,
    *,
    done: dict[Key, np.ndarray] | None = None,
    on_result: Callable[[Key, np.ndarray], None] | None = None,
) -> dict[Key, np.ndarray]:
    """2-D layouts of the same N points at several (epoch, layer) pairs, tied together by ``method``.

    embeddings: (epoch, layer) -> N x D array (row i is the same probe image in every array).
    Returns (epoch, layer) -> N x 2 float32, each centred with unit root-mean-square radius.

    Each input is PCA-reduced to ``pca_dims`` (when wider), its exact ``n_neighbors`` nearest
    neighbours found, and laid out by umap-learn with ``min_dist`` and ``seed`` (a seed makes UMAP
    single-threaded and the result reproducible). A layout that starts from no other starts from
    the first two principal components, not umap-learn's default spectral initialisation: that one
    differs from call to call, seed or not, when the neighbour graph falls apart into several
    components (well-separated classes do that), and is no better here.

    n_epochs: UMAP's optimisation epochs for every layout; None: UMAP's default (500 below 10,000
    points, else 200; 200 for ``"aligned"``) for a layout started from scratch, ``WARM_EPOCHS``
    for one started from its neighbour's (which also starts at ``WARM_LEARNING_RATE``). See the
    module docstring for the methods.

    done: layouts already known (from a cache), reused as they are and as starting points; with
    ``"aligned"`` any missing layout recomputes them all (they are optimised jointly).
    on_result(key, coords) is called as each layout is finished (to save it at once).
    """
    _check_params(method, pca_dims, n_neighbors, min_dist, seed, n_epochs)
    _check_embeddings(embeddings, n_neighbors)
    from tqdm.auto import tqdm

    done = dict(done or {})
    keys = sorted(embeddings)
    out: dict[Key, np.ndarray] = {}
    if method == "aligned":
        order = aligned_order(keys)
        if all(k in done for k in order):
            return {k: done[k] for k in keys}
        with tqdm(total=1, desc=f"AlignedUMAP of {len(order)} layouts", disable=not progress) as bar:
            xs = [_reduce(embeddings[k], pca_dims, seed) for k in order]
            for k, y in zip(order, _aligned(xs, n_neighbors, min_dist, seed, n_epochs)):
                out[k] = normalise_layout(y)
                if on_result:
                    on_result(k, out[k])
            bar.update(1)
        return {k: out[k] for k in keys}

    parents = layout_parents(keys)
    todo = [k for k in keys if k not in done]
    with tqdm(total=len(todo), desc=f"UMAP layouts ({method})", disable=not progress) as bar:
        for k in keys:
            if k in done:
                out[k] = np.asarray(done[k], dtype=np.float32)
                continue
            parent = parents[k]
            bar.set_postfix(epoch=k[0], layer=k[1])
            x = _reduce(embeddings[k], pca_dims, seed)
            warm_start = method == "warm" and parent is not None
            epochs = n_epochs if n_epochs is not None else WARM_EPOCHS if warm_start else None
            y = _umap(x, out[parent] if warm_start else "pca", n_neighbors, min_dist, seed, epochs,
                      WARM_LEARNING_RATE if warm_start else 1.0)
            if method == "procrustes" and parent is not None:
                y = _procrustes(y, out[parent])
            out[k] = normalise_layout(y)
            if on_result:
                on_result(k, out[k])
            bar.update(1)
    return out


# ---- runs and the cache ----------------------------------------------------------------------


def _digest(*parts: object) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(p.tobytes() if isinstance(p, np.ndarray) else json.dumps(p, sort_keys=True).encode())
        h.update(b"|")
    return h.hexdigest()[:16]


def cache_keys(data: dict[Key, np.ndarray], params: dict) -> dict[Key, str]:
    """The cache key of each layout: a hash of the parameters, the exact input rows and, for the
    methods that tie layouts together, everything the layout depends on.

    ``independent``: its own input. ``warm`` / ``procrustes``: its input and its parent's key (so
    the key covers the whole chain it started from, and adding a later epoch invalidates nothing
    before it). ``aligned``: every input of the joint fit, in order.
    """
    base = _digest(_CACHE_VERSION, params)
    own = {k: _digest(base, np.ascontiguousarray(x)) for k, x in data.items()}
    method = params["method"]
    if method == "independent":
        return own
    if method == "aligned":
        order = aligned_order(list(data))
        joint = _digest(base, [own[k] for k in order], [list(k) for k in order])
        return {k: _digest(joint, list(k)) for k in data}
    keys: dict[Key, str] = {}
    for k, parent in layout_parents(list(data)).items():  # parents come first
        keys[k] = _digest(own[k], keys[parent] if parent is not None else "root")
    return keys


def _cache_path(directory: Path, key: Key, pool: str, method: str, digest: str) -> Path:
    return directory / f"epoch={key[0]:03d}_layer={key[1]:02d}_{pool}_{method}_{digest}.npz"


def _load_cached(path: Path, n: int) -> np.ndarray | None:
    try:
        with np.load(path) as f:
            coords = f["coords"]
    except (OSError, KeyError, ValueError):  # missing or unreadable: recompute
        return None
    return coords.astype(np.float32) if coords.shape == (n, 2) else None


def _save_cached(path: Path, coords: np.ndarray, ids: np.ndarray, params: dict) -> None:
    with atomic_open(path, "wb") as f:
        np.savez(f, coords=coords, ids=ids, params=np.array(json.dumps(params, sort_keys=True)))


def _layout_inputs(run, epochs: Sequence[int] | None, layers: Sequence[int] | None, pool: str, max_points: int,
                   seed: int) -> tuple[list[int], list[int], dict[Key, np.ndarray], np.ndarray, dict]:
    """What a layout reads of a run: the chosen ``epochs`` and ``layers`` (default: all saved), the
    ``(epoch, layer) -> rows x D`` embeddings of ``pool``, the probe ``rows`` (at most
    ``max_points``, drawn with ``seed``, the same in every layout) and the first epoch's ``ids``,
    ``labels`` and ``factors`` (all rows). Clear errors for what is not saved."""
    from ..runs import embedding_key, saved_layers, saved_pools

    saved = run.embedding_epochs()
    if not saved:
        raise FileNotFoundError(f"{run.path / 'embeddings'} holds no epoch=NNN.npz: the run saved no embeddings "
                                "(diagnostics.enabled or diagnostics.save_embeddings was false)")
    epochs = saved if epochs is None else [int(e) for e in epochs]
    missing = [e for e in epochs if e not in saved]
    if missing or not epochs:
        raise ConfigError("epochs", missing or list(epochs), f"epochs with saved embeddings: {saved}")
    names = {e: run.embedding_keys(e) for e in epochs}  # the files' indexes: no array read yet

    pools = saved_pools(names[epochs[0]])
    if pool not in pools:
        raise ConfigError("pool", pool, f"a pool with saved embeddings: {pools}")
    available = sorted(set.intersection(*(set(saved_layers(n, pool)) for n in names.values())))
    layers = available if layers is None else [int(l) for l in layers]
    bad = [l for l in layers if l not in available]
    if bad or not layers:
        raise ConfigError("layers", bad or list(layers), f"layers saved for pool {pool!r} at every chosen epoch: {available}")

    # One array at a time, keeping only the laid-out rows: an epoch of a deep run with a large probe
    # set is hundreds of MB, of which a layout needs one pool and ``max_points`` rows.
    data: dict[Key, np.ndarray] = {}
    rows = n = None
    for e in epochs:
        for l in layers:
            x = run.embeddings(e, [embedding_key(l, pool)])[embedding_key(l, pool)]
            if rows is None:
                n = len(x)
                rows = np.arange(n) if n <= max_points else np.sort(
                    np.random.default_rng(seed).choice(n, max_points, replace=False))
            elif len(x) != n:
                raise ValueError(f"the saved embeddings hold different numbers of probe images: {n} at epoch "
                                 f"{epochs[0]}, {len(x)} at epoch {e} layer {l}; lay out epochs of one probe set")
            data[(e, l)] = np.ascontiguousarray(x[rows])
            del x
    return epochs, layers, data, rows, run.embeddings(epochs[0], ["ids", "labels", "factors"])


def compute_layouts(
    run,
    epochs: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
    pool: str = "mean",
    method: str = DEFAULT_METHOD,
    max_points: int = 5000,
    pca_dims: int = 50,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
    cache: bool = True,
    progress: bool = True,
    n_epochs: int | None = None,
) -> Layouts:
    """Layouts of a run's saved probe embeddings (``embeddings/epoch=NNN.npz``) at every requested
    epoch (default: all saved) and layer (default: all saved for ``pool``).

    At most ``max_points`` probe images are laid out: a subset drawn with ``seed``, the same in every
    layout (``Layouts.ids`` says which probe rows). With ``cache`` each layout is stored under
    ``<run>/layouts/`` in a file named by epoch, layer, pool, method and a hash of everything it
    depends on (:func:`cache_keys`); a later call with the same arguments reads them back, and a
    changed parameter or input computes afresh. The other arguments are those of
    :func:`layouts_from_embeddings`.
    """
    from ..runs import Run, load_run

    run = run if isinstance(run, Run) else load_run(run)
    _check_params(method, pca_dims, n_neighbors, min_dist, seed, n_epochs)
    if not isinstance(max_points, (int, np.integer)) or max_points < n_neighbors + 1:
        raise ConfigError("max_points", max_points, f"an integer >= n_neighbors + 1 = {n_neighbors + 1}")
    epochs, layers, data, rows, first = _layout_inputs(run, epochs, layers, pool, max_points, seed)
    ids = first["ids"][rows] if "ids" in first else rows
    # What the numbers depend on (the cap only through the rows it picks, which the key hashes).
    params = {"method": method, "pool": pool, "pca_dims": int(pca_dims), "n_neighbors": int(n_neighbors),
              "min_dist": float(min_dist), "seed": int(seed), "n_epochs": None if n_epochs is None else int(n_epochs)}

    done: dict[Key, np.ndarray] = {}
    on_result = None
    if cache:
        directory = run.path / "layouts"
        digests = cache_keys(data, params)
        paths = {k: _cache_path(directory, k, pool, method, d) for k, d in digests.items()}
        for k, path in paths.items():
            coords = _load_cached(path, len(rows)) if path.is_file() else None
            if coords is not None:
                done[k] = coords

        def on_result(key: Key, coords: np.ndarray) -> None:
            _save_cached(paths[key], coords, ids, {**params, "epoch": key[0], "layer": key[1]})

    coords = layouts_from_embeddings(data, method=method, pca_dims=pca_dims, n_neighbors=n_neighbors,
                                     min_dist=min_dist, seed=seed, progress=progress, n_epochs=n_epochs,
                                     done=done, on_result=on_result)
    labels = first["labels"][rows] if "labels" in first else None
    factors = first["factors"][rows].astype(np.float32) if "factors" in first and first["factors"].size else None
    label_names, factor_names = None, []
    if (run.path / "embeddings" / "probe.json").is_file():
        probe = run.probe_info()
        label_names = list(probe["classes"]) or None
        factor_names = [f.name for f in probe["factor_specs"]]
    if factors is not None and len(factor_names) != factors.shape[1]:
        factor_names = [f"factor{i}" for i in range(factors.shape[1])]
    if factors is None:
        factor_names = []
    return Layouts(coords=coords, ids=np.asarray(ids), labels=labels, label_names=label_names, factors=factors,
                   factor_names=factor_names, pool=pool,
                   params={**params, "max_points": int(max_points), "points": len(rows)})


# ---- measurement -----------------------------------------------------------------------------


def _benchmark_run(depth: int, points: int, runs_dir: str | Path, cache_dir: str | Path | None = "data"):
    """A quickly trained supervised run on ``shapes`` (the quickstart's model size at ``depth``, one
    epoch of about 360 steps) whose probe set holds ``points`` images; reused when it exists."""
    from ..runs import Run
    from ..training.fit import fit

    name = f"layouts-depth{depth}-{points}"
    path = Path(runs_dir) / name
    if (path / "embeddings").is_dir() and Run(path).summary.get("status") == "completed":
        return Run(path)
    # probe images come from the validation split: 10% of the 90% left after the test split
    num_images = max(12000, math.ceil(points / 0.09 / 1000 + 1) * 1000)
    return fit(preset="supervised", overrides=[
        f"data.shapes.num_images={num_images}", f"data.probe_size={points}", "data.batch_size=128",
        "model.patch_size=8", "model.width=96", f"model.depth={depth}", "model.heads=4", "optim.lr=2e-3",
        "trainer.max_epochs=1", f"runs_dir={runs_dir}", f"name={name}"], cache_dir=cache_dir)


def _warm_up(methods: Sequence[str], seed: int) -> None:
    """Compile the numba functions ``methods`` use (NN-descent included) on a small set, so the
    timings that follow measure computation, not compilation."""
    import umap

    x = np.random.default_rng(seed).normal(size=(200, 8)).astype(np.float32)
    grid = {(0, 0): x, (0, 1): x + 0.01}
    for method in methods:
        if method in METHODS:
            layouts_from_embeddings(grid, method=method, n_neighbors=10, seed=seed, progress=False, n_epochs=20)
    if BASELINE in methods or "aligned" in methods:  # both search neighbours with NN-descent
        umap.UMAP(n_neighbors=10, n_epochs=20, random_state=seed, n_jobs=1, force_approximation_algorithm=True).fit(x)


def _plain_umap(data: dict[Key, np.ndarray], seed: int) -> dict[Key, np.ndarray]:
    """umap-learn as it comes (its own neighbour search and spectral initialisation), per layout."""
    import umap

    out = {}
    for k, x in data.items():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs value.*|.*not fully connected.*")
            out[k] = normalise_layout(umap.UMAP(random_state=seed).fit_transform(x))
    return out


def layout_benchmark(
    depth: int = 6,
    points: int = 5000,
    run=None,
    methods: Sequence[str] = (BASELINE, *METHODS),
    epochs: int = 1,
    pool: str = "mean",
    trust_points: int = 5000,
    runs_dir: str | Path = "runs/bench",
    seed: int = 0,
    progress: bool = False,
    cache_dir: str | Path | None = "data",
) -> list[dict]:
    """Time, trustworthiness and smoothness of each method on one run's layers 0..depth.

    run: a run directory to measure (default: train one for an epoch on ``shapes`` with a
    ``points``-image probe set, kept under ``runs_dir`` for the next call; its generated data is
    cached under ``cache_dir``).
    epochs: lay out the last saved epoch only (1) or the last two (2, a 2 x (depth+1) grid).

    One row per method: ``seconds`` for all layouts (after a numba warm-up) and ``cpu_seconds``
    (this process's CPU time: close to the quiet-machine wall time where UMAP runs on one thread,
    and less disturbed by other processes), ``trustworthiness``
    (scikit-learn's, 10 neighbours, mean over layouts; on a ``trust_points`` subset when smaller
    than ``points``), ``layer_displacement`` and ``epoch_displacement``
    (:func:`consecutive_displacement`: lower is smoother).
    """
    from sklearn.manifold import trustworthiness

    from ..runs import Run, load_run

    if epochs not in (1, 2):
        raise ConfigError("epochs", epochs, "1 (the last saved epoch) or 2 (the last two)")
    bad = [m for m in methods if m not in (BASELINE, *METHODS)]
    if bad:
        raise ConfigError("methods", bad, f"a list from {', '.join((BASELINE, *METHODS))}")
    run = _benchmark_run(depth, points, runs_dir, cache_dir) if run is None else run if isinstance(run, Run) else load_run(run)
    chosen = run.embedding_epochs()[-epochs:]
    chosen, layers, data, rows, _ = _layout_inputs(run, chosen or None, None, pool, points, seed)
    data = {k: x.astype(np.float32) for k, x in data.items()}
    n = len(rows)
    trust_rows = np.sort(np.random.default_rng(seed + 1).choice(n, min(trust_points, n), replace=False))

    _warm_up(methods, seed)
    results = []
    for method in methods:
        start, cpu = time.perf_counter(), time.process_time()
        if method == BASELINE:
            coords = _plain_umap(data, seed)
        else:
            coords = layouts_from_embeddings(data, method=method, seed=seed, progress=progress)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        trust = [trustworthiness(data[k][trust_rows], coords[k][trust_rows], n_neighbors=10) for k in sorted(data)]
        results.append({
            "method": method, "layouts": len(data), "points": n, "seconds": seconds, "cpu_seconds": cpu,
            "trustworthiness": float(np.mean(trust)), "layer_displacement": consecutive_displacement(coords, "layer"),
            "epoch_displacement": consecutive_displacement(coords, "epoch"), "run": str(run.path),
            "epochs": chosen, "layers": layers,
        })
    return results


def format_benchmark(rows: list[dict]) -> str:
    """The benchmark rows as a markdown table."""
    lines = ["| method | layouts | points | seconds | CPU seconds | trustworthiness (k=10) | layer displacement "
             "| epoch displacement |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['layouts']} | {r['points']:,} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | "
                     f"{r['trustworthiness']:.3f} | {r['layer_displacement']:.3f} | {r['epoch_displacement']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.analysis.layouts",
                                     description="Measure the layout methods on one run's layers (markdown table).")
    parser.add_argument("--run", help="a run directory (default: train a small depth-DEPTH run once)")
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=1, choices=(1, 2))
    parser.add_argument("--methods", nargs="+", default=[BASELINE, *METHODS], choices=(BASELINE, *METHODS))
    parser.add_argument("--trust-points", type=int, default=5000)
    parser.add_argument("--runs-dir", default="runs/bench")
    parser.add_argument("--data-dir", default="data", help="where the generated shapes data is cached")
    args = parser.parse_args(argv)
    rows = layout_benchmark(depth=args.depth, points=args.points, run=args.run, methods=args.methods,
                            epochs=args.epochs, trust_points=args.trust_points, runs_dir=args.runs_dir,
                            cache_dir=args.data_dir)
    print(f"run: {rows[0]['run']}, epochs {rows[0]['epochs']}, layers {rows[0]['layers']}\n")
    print(format_benchmark(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
