"""Numbers read off a finished run: the per-layer values a notebook states and a test asserts.

The diagnostics table (``run.diagnostics``: epoch, layer, pool, metric, value) holds every number;
these helpers pick the ones a sentence is about -- "at the last layer", "the layer where the factor
peaks", "every factor by layer" -- always at one epoch (the last recorded one unless asked) and one
pooling, so that two runs are compared like for like.

:func:`objective_rankme` and :func:`objective_factors` are the exceptions: they reload the final
checkpoint to measure the RankMe and the factor probes of
the embedding an objective's loss acts on (a projector's output, which the diagnostics, being about
the backbone, do not record).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..runs import Run, embedding_key, saved_layers

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

FACTOR_PREFIX = "factor/"


def _table(run_or_table: Run | pd.DataFrame) -> pd.DataFrame:
    table = run_or_table.diagnostics if isinstance(run_or_table, Run) else run_or_table
    missing = {"epoch", "layer", "pool", "metric", "value"} - set(table.columns)
    if missing:
        raise ValueError(f"a diagnostics table needs the columns epoch, layer, pool, metric, value; "
                         f"missing {sorted(missing)}")
    if table.empty:
        raise ValueError("the diagnostics table is empty: was the run trained with diagnostics.enabled=true?")
    if "run" in table.columns and table["run"].nunique() > 1:  # a wb.compare_runs table: never average runs
        names = list(dict.fromkeys(table["run"]))
        raise ValueError(f"the table holds {len(names)} runs ({', '.join(map(str, names[:4]))}): "
                         "read one, e.g. table[table.run == name]")
    return table


def final_epoch(run_or_table: Run | pd.DataFrame) -> int:
    """The last epoch with diagnostics."""
    return int(_table(run_or_table)["epoch"].max())


def by_layer(run_or_table: Run | pd.DataFrame, metric: str, pool: str = "mean", epoch: int | None = None) -> pd.Series:
    """``metric`` per layer (a Series indexed by layer, ascending) at ``epoch`` (default: the last).

    Raises ``KeyError`` naming what exists when the metric or the pool was not recorded.
    """
    table = _table(run_or_table)
    epoch = int(table["epoch"].max()) if epoch is None else int(epoch)
    if epoch not in set(table["epoch"]):
        raise KeyError(f"no diagnostics at epoch {epoch}; recorded epochs: {sorted(set(table['epoch']))}")
    rows = table[(table["epoch"] == epoch) & (table["pool"] == pool) & (table["metric"] == metric)]
    if rows.empty:
        pools = sorted(set(table.loc[table["metric"] == metric, "pool"]))
        if pools:
            raise KeyError(f"metric {metric!r} has no rows for pool {pool!r}; it was recorded for pools {pools}")
        known = sorted(set(table["metric"]))
        raise KeyError(f"metric {metric!r} was not recorded; recorded metrics: {', '.join(known)}")
    return rows.groupby("layer")["value"].mean().sort_index().rename(metric)


def at_last_layer(run_or_table: Run | pd.DataFrame, metric: str, pool: str = "mean", epoch: int | None = None) -> float:
    """``metric`` at the deepest layer that recorded it."""
    series = by_layer(run_or_table, metric, pool, epoch)
    return float(series.iloc[-1])


def at_layer(run_or_table: Run | pd.DataFrame, metric: str, layer: int | None = None, pool: str = "mean",
             epoch: int | None = None) -> float:
    """``metric`` at ``layer`` (default: the deepest layer that recorded it) and ``epoch`` (default:
    the last). Raises ``KeyError`` naming the recorded layers when ``layer`` has no value."""
    series = by_layer(run_or_table, metric, pool, epoch)
    if layer is None:
        return float(series.iloc[-1])
    if int(layer) not in series.index:
        raise KeyError(f"metric {metric!r} ({pool} pool) has no value at layer {layer}; "
                       f"recorded layers: {[int(i) for i in series.index]}")
    return float(series.loc[int(layer)])


def peak_layer(run_or_table: Run | pd.DataFrame, metric: str, pool: str = "mean", epoch: int | None = None) -> int:
    """The layer where ``metric`` is highest (the shallowest one on a tie); NaN values are ignored."""
    series = by_layer(run_or_table, metric, pool, epoch).dropna()
    if series.empty:
        raise ValueError(f"metric {metric!r} is NaN at every layer")
    return int(series.index[series.to_numpy().argmax()])


def factor_names(run_or_table: Run | pd.DataFrame) -> list[str]:
    """The ground-truth factors whose decodability was recorded, in the table's order."""
    metrics = _table(run_or_table)["metric"]
    return list(dict.fromkeys(m[len(FACTOR_PREFIX):] for m in metrics if m.startswith(FACTOR_PREFIX)))


def factor_table(run_or_table: Run | pd.DataFrame, pool: str = "mean", epoch: int | None = None) -> pd.DataFrame:
    """Decodability of every factor by layer: rows are layers, columns factor names (accuracy for a
    categorical factor, R^2 for a continuous one)."""
    names = factor_names(run_or_table)
    if not names:
        raise KeyError("no factor/<name> metrics recorded: the dataset has no ground-truth factors (use shapes)")
    table = _table(run_or_table)
    return pd.DataFrame({name: by_layer(table, FACTOR_PREFIX + name, pool, epoch) for name in names}).rename_axis("layer")


def spectrum(run: Run, layer: int | None = None, pool: str = "cls", epoch: int | None = None) -> "np.ndarray":
    """The saved covariance spectrum of one layer (eigenvalues of the covariance of the
    l2-normalised probe embeddings, largest first) at ``epoch`` (default: the last with embeddings).

    ``layer`` defaults to the deepest one saved for ``pool``. Its sum is the total variance of the
    normalised embeddings (0 under complete collapse); ``spectrum[0] / spectrum.sum()`` the share
    of the strongest direction.
    """
    import numpy as np

    epochs = run.embedding_epochs()
    if not epochs:
        raise FileNotFoundError(f"{run.path / 'embeddings'} holds no epoch=NNN.npz: the run saved no embeddings")
    epoch = epochs[-1] if epoch is None else int(epoch)
    if epoch not in epochs:
        raise KeyError(f"no embeddings at epoch {epoch}; saved epochs: {epochs}")
    layers = saved_layers(run.embedding_keys(epoch), pool, spectrum=True)
    if not layers:
        raise KeyError(f"no spectra saved for pool {pool!r} at epoch {epoch}")
    layer = layers[-1] if layer is None else int(layer)
    if layer not in layers:
        raise KeyError(f"no spectrum for layer {layer} ({pool} pool); saved layers: {layers}")
    key = embedding_key(layer, pool, spectrum=True)
    return np.sort(np.asarray(run.embeddings(epoch, [key])[key], dtype=np.float64))[::-1]


def objective_params(run: Run, objective: str) -> dict[str, Any]:
    """The parameters objective ``objective`` of ``run`` trained with: its defaults, overridden by
    the run's ``config.yaml`` (schedules stay as their specs)."""
    from ..objectives import objective_class

    objectives = run.config.objectives
    if objective not in objectives:
        raise KeyError(f"objective {objective!r} is not in {run.path / 'config.yaml'}; it has {list(objectives)}")
    config = objectives[objective]
    return {**objective_class(objective, config).defaults, **config.params}


def final_logged(run: Run, column: str, last: int = 1) -> float:
    """The mean of the last ``last`` logged values of a metrics.csv column (e.g. ``train/dino/teacher_entropy``)."""
    metrics = run.metrics
    if column not in metrics:
        raise KeyError(f"{column!r} is not a column of {run.path / 'metrics.csv'}; "
                       f"columns: {', '.join(c for c in metrics.columns if c not in ('epoch', 'step'))}")
    values = metrics[column].dropna()
    if values.empty:
        return math.nan
    return float(values.iloc[-max(1, int(last)):].mean())


def _objective_and_last_layer(module, objective: str | None, images: "torch.Tensor"):
    """The embedding ``objective``'s loss acts on, and the backbone's pooled last layer, of ``images``."""
    import torch

    names = list(module.objectives)
    if objective is None:
        if len(names) != 1:
            raise ValueError(f"the run has objectives {names}: name the one to measure")
        objective = names[0]
    if objective not in module.objectives:
        raise KeyError(f"objective {objective!r} is not in the run; it has {names}")
    target = module.objectives[objective]
    with torch.no_grad():
        out = module(images)
        if hasattr(target, "embedding"):
            embedding = target.embedding(out)
        else:
            embedding = out.pooled(target.layers[-1], getattr(target, "pool", module.backbone.pool))
        last = out.pooled(module.backbone.depth, module.backbone.pool).float()
    return embedding.float(), last


def objective_rankme(run: Run, objective: str | None = None, images: "torch.Tensor | None" = None,
                     num_images: int = 300, cache_dir: Any = "data") -> dict[str, float]:
    """RankMe of the embedding ``objective``'s loss acts on, and of the backbone's last layer, on
    held-out clean images, from the run's final checkpoint.

    The embedding is what the objective's ``embedding(out)`` returns (a joint-embedding objective's
    projector output; the toy's softmax). An objective without one (DINO, whose loss acts on
    prototype scores of the pooled token) is measured on the pooled token of the layer it reads.
    The images default to the first ``num_images`` images of the probe set (the first validation
    images) that the run saved; ``cache_dir`` is where to rebuild the data when it saved none.
    ``objective`` may be omitted when the run has exactly one.

    Returns ``{"embedding": ..., "last_layer": ..., "width": <embedding width>, "n": <images>}``.
    """
    from ..diagnostics import rankme
    from ..training.checkpointing import load_module

    module = load_module(run.checkpoint)
    if images is None:
        images = _held_out(run, num_images, cache_dir)["images"]
    embedding, last = _objective_and_last_layer(module, objective, images)
    return {"embedding": float(rankme(embedding)), "last_layer": float(rankme(last)),
            "width": float(embedding.shape[1]), "n": float(embedding.shape[0])}


def objective_factors(run: Run, objective: str | None = None, num_images: int = 1000, cache_dir: Any = "data",
                      initial: bool = False, seed: int = 0) -> pd.DataFrame:
    """Every factor's probe score on the embedding ``objective``'s loss acts on (a projector's
    output) and on the backbone's last layer, from the run's final checkpoint.

    A joint-embedding loss makes its *projector output* invariant to the augmentations; the
    backbone below it may keep what the augmentations change (Chen et al. 2020, SimCLR, section
    4.2), and the diagnostics only see the backbone. This reads both, with the diagnostics' probe
    (:func:`~workbench.diagnostics.probes.factor_decodability`, closed-form ridge, split ``seed``)
    on the first ``num_images`` probe images (``cache_dir``: where to rebuild the data when the run
    saved no probe set). ``initial=True`` measures the same network at initialisation instead --
    the weights :func:`~workbench.training.fit.fit` started from, rebuilt from the run's config and
    seed -- the untrained reference a trained run is compared with. Which embedding: as in
    :func:`objective_rankme`.

    Returns a DataFrame indexed by factor with columns ``embedding`` and ``last_layer``.
    """
    from ..diagnostics.probes import factor_decodability
    from ..training.checkpointing import load_module
    from ..training.module import initial_module

    module = load_module(run.checkpoint)
    if initial:
        module = initial_module(module.hparams["config"], module.hparams["data_info"]).eval()
    probe = _held_out(run, num_images, cache_dir)
    if probe["factors"] is None or not probe["factor_specs"]:
        raise ValueError(f"run {run.path.name!r} was trained on data without ground-truth factors "
                         f"({run.config.data.name}); factor probes need data.name=shapes")
    embedding, last = _objective_and_last_layer(module, objective, probe["images"])
    columns = {}
    for name, z in (("embedding", embedding), ("last_layer", last)):
        scores = factor_decodability(z, probe["factors"], probe["factor_specs"], seed=seed, solver="ridge")
        columns[name] = {factor: float(result["score"]) for factor, result in scores.items()}
    table = pd.DataFrame(columns)
    table.index.name = "factor"
    return table


def _held_out(run: Run, num_images: int, cache_dir: Any) -> dict[str, Any]:
    """The first ``num_images`` probe images (uint8), their ``factors`` (``None`` without) and
    ``factor_specs``: from the probe set the run saved, or rebuilt from the data cache."""
    import torch

    if (run.path / "embeddings" / "probe.npz").is_file():
        saved = run.probe()
        images = torch.from_numpy(saved["images"])
        # the probe set is the first probe_size validation images: it serves when it is large
        # enough, or when it is smaller than probe_size (then it is the whole validation split)
        if len(images) >= num_images or len(images) < run.config.data.probe_size:
            factors = saved.get("factors")
            return {"images": images[:num_images],
                    "factors": None if factors is None else torch.from_numpy(factors[:num_images]),
                    "factor_specs": list(saved["factor_specs"])}
    from ..data import TensorDataModule

    dm = TensorDataModule(run.config.data, cache_dir=cache_dir).prepare()
    val = dm.splits["val"]
    return {"images": val.images[:num_images].cpu(),
            "factors": None if val.factors is None else val.factors[:num_images].cpu(),
            "factor_specs": list(dm.data.factors)}
