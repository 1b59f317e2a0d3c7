"""The run directory: a public contract read by notebooks, widgets, the CLI and tests.

    runs/<run-name>/
      config.yaml            full resolved config (re-running it reproduces the run)
      metrics.csv            Lightning's CSVLogger: per-step / per-epoch losses and metrics
      summary.json           status, wall time and headline numbers (final val / test metrics)
      diagnostics.csv        tidy per-layer diagnostics: epoch, layer, pool, metric, value
      embeddings/epoch=NNN.npz   per-layer probe embeddings, spectra, labels, factors, ids
      checkpoints/last.ckpt  the latest checkpoint

An analysis of a model trained elsewhere (:func:`workbench.analysis.analyze.analyze`) writes the
same files but ``metrics.csv`` and ``checkpoints/`` (it trains nothing), and ``analysis.yaml``:
what was analysed (:attr:`Run.analysis`).

Files the workbench writes itself are written atomically (temp file + rename).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .atomic import atomic_write_text
from .config import RunConfig
from .errors import ConfigError

ANALYSIS_FILE = "analysis.yaml"  # in an analysis directory: the model, weights and preprocessing analysed

# ---- names of the arrays in embeddings/epoch=NNN.npz -------------------------------------------

def embedding_key(layer: int, pool: str, spectrum: bool = False) -> str:
    """The name of a saved array: ``l<layer>_<pool>`` (the N x D embeddings) or
    ``spectrum_l<layer>_<pool>`` (their covariance eigenvalues)."""
    return f"{'spectrum_' if spectrum else ''}l{int(layer)}_{pool}"


def parse_embedding_key(name: str) -> "tuple[bool, int, str] | None":
    """``(spectrum, layer, pool)`` for a name :func:`embedding_key` makes, ``None`` for the other
    arrays (``labels``, ``factors``, ``ids``)."""
    spectrum = name.startswith("spectrum_")
    rest = name.removeprefix("spectrum_")
    if not rest.startswith("l") or "_" not in rest:
        return None
    layer, pool = rest[1:].split("_", 1)
    return (spectrum, int(layer), pool) if layer.isdigit() and pool else None


def saved_layers(names: Iterable[str], pool: str, spectrum: bool = False) -> list[int]:
    """The layers with a saved array of this kind for ``pool``, sorted."""
    parsed = (parse_embedding_key(n) for n in names)
    return sorted({p[1] for p in parsed if p is not None and p[0] == spectrum and p[2] == pool})


def saved_pools(names: Iterable[str], spectrum: bool = False) -> list[str]:
    """The pools with a saved array of this kind at some layer, sorted."""
    parsed = (parse_embedding_key(n) for n in names)
    return sorted({p[2] for p in parsed if p is not None and p[0] == spectrum})


@dataclass
class Run:
    """A handle on a run directory; every property reads the files, so it is always current."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> RunConfig:
        return RunConfig.from_yaml(self.path / "config.yaml")

    @property
    def analysis(self) -> "dict[str, Any] | None":
        """What an analysis directory analysed (``analysis.yaml``: the model's source and weights, which
        tokens each layer is, the preprocessing); ``None`` for a training run."""
        import yaml

        path = self.path / ANALYSIS_FILE
        return yaml.safe_load(path.read_text()) if path.is_file() else None

    @property
    def metrics(self) -> pd.DataFrame:
        """Lightning's metrics.csv: one row per logging event, a column per metric (NaN elsewhere)."""
        path = self.path / "metrics.csv"
        return pd.read_csv(path) if path.is_file() else pd.DataFrame()

    @property
    def summary(self) -> dict[str, Any]:
        path = self.path / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def diagnostics(self) -> pd.DataFrame:
        """The tidy per-layer table: epoch, layer, pool, metric, value."""
        path = self.path / "diagnostics.csv"
        return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["epoch", "layer", "pool", "metric", "value"])

    def embeddings(self, epoch: int, keys: "Iterable[str] | None" = None) -> dict:
        """The saved per-layer probe embeddings of ``epoch`` (arrays keyed ``l<layer>_<pool>``,
        ``spectrum_l<layer>_<pool>``, ``labels``, ``factors``, ``ids``; see :func:`embedding_key`).

        keys: read only these arrays (names the file lacks are left out). A depth-12 run with a
        large probe set saves hundreds of MB per epoch: ask for what you need.
        """
        import numpy as np

        if isinstance(keys, str):  # one name, not its letters
            keys = [keys]
        with np.load(self.path / "embeddings" / f"epoch={epoch:03d}.npz") as data:
            names = data.files if keys is None else [k for k in dict.fromkeys(keys) if k in data.files]
            return {k: data[k] for k in names}

    def embedding_keys(self, epoch: int) -> list[str]:
        """The names of the arrays saved at ``epoch``, read from the file's index (no array is read)."""
        import numpy as np

        with np.load(self.path / "embeddings" / f"epoch={epoch:03d}.npz") as data:
            return list(data.files)

    def probe_info(self) -> dict:
        """The probe set's ``classes`` (names) and ``factor_specs`` (:class:`~workbench.data.base.Factor`
        list), without its images."""
        from .data.base import Factor

        path = self.path / "embeddings" / "probe.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: the run saved no probe set "
                                    "(diagnostics.save_embeddings was false, or the run predates it)")
        meta = json.loads(path.read_text())
        specs = [Factor(f["name"], f["kind"], f["level"], f["description"], tuple(f["values"]),
                        None if f["range"] is None else tuple(f["range"])) for f in meta["factors"]]
        return {"classes": meta["classes"], "factor_specs": specs}

    def probe(self) -> dict:
        """The probe set the diagnostics embed: ``images`` (uint8 N x C x H x W), ``labels``,
        ``factors`` (N x F) when the data has them, and :meth:`probe_info`'s ``classes`` and
        ``factor_specs``. Row i is row i of every saved embedding."""
        import numpy as np

        directory = self.path / "embeddings"
        if not (directory / "probe.npz").is_file():
            raise FileNotFoundError(f"{directory / 'probe.npz'} does not exist: the run saved no probe set "
                                    "(diagnostics.save_embeddings was false, or the run predates it)")
        with np.load(directory / "probe.npz") as data:
            out: dict = {k: data[k] for k in data.files}
        return {**out, **self.probe_info()}

    def embedding_epochs(self) -> list[int]:
        """The epochs with saved embeddings, in order."""
        directory = self.path / "embeddings"
        return sorted(int(p.stem.split("=")[1]) for p in directory.glob("epoch=*.npz")) if directory.is_dir() else []

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.ckpt"

    def curve(self, metric: str) -> pd.DataFrame:
        """Rows of ``metrics`` where ``metric`` was logged: columns step, epoch, value."""
        m = self.metrics
        if metric not in m:
            return pd.DataFrame(columns=["step", "epoch", "value"])
        rows = m[m[metric].notna()]
        return pd.DataFrame({"step": rows["step"], "epoch": rows["epoch"], "value": rows[metric]}).reset_index(drop=True)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"


def load_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / "config.yaml").is_file():
        raise FileNotFoundError(f"{path} is not a run directory (no config.yaml)")
    return Run(path)


def list_runs(runs_dir: str | Path = "runs") -> pd.DataFrame:
    """One row per run directory under ``runs_dir``: name, preset, dataset, status and headline numbers."""
    rows = []
    root = Path(runs_dir)
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if not (path / "config.yaml").is_file():
            continue
        run = Run(path)
        try:
            cfg = run.config
            preset, dataset = cfg.preset, cfg.data.name
        except Exception:  # an unreadable config still gets listed
            preset, dataset = "?", "?"
        s = run.summary
        rows.append({
            "name": path.name, "preset": preset, "dataset": dataset, "status": s.get("status", "incomplete"),
            "epochs": s.get("epochs"), "wall_s": s.get("wall_s"), **{k: v for k, v in s.get("headline", {}).items()},
        })
    return pd.DataFrame(rows)


def compare_runs(runs: "list[Run | str | Path] | str | Path") -> pd.DataFrame:
    """One tidy table (run, epoch, layer, pool, metric, value) from several run directories.

    ``runs`` is a list of runs or paths, or a directory whose run sub-directories are all taken.
    """
    if isinstance(runs, (str, Path)):
        root = Path(runs)
        runs = [p for p in sorted(root.iterdir()) if (p / "config.yaml").is_file()]
    frames = []
    for r in runs:
        run = r if isinstance(r, Run) else load_run(r)
        table = run.diagnostics
        if not table.empty:
            frames.append(table.assign(run=run.name)[["run", "epoch", "layer", "pool", "metric", "value"]])
    if not frames:
        return pd.DataFrame(columns=["run", "epoch", "layer", "pool", "metric", "value"])
    return pd.concat(frames, ignore_index=True)


def create_run_dir(config: RunConfig) -> Path:
    """Reserve ``runs_dir/<name>`` (a generated, unused name when ``config.name`` is empty)."""
    root = Path(config.runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    if config.name:
        path = root / config.name
        try:
            path.mkdir()  # never write into another run
        except FileExistsError:
            raise ConfigError("name", config.name,
                              f"a run name not used yet ({path} exists); pick another name or leave it empty") from None
        return path
    base = f"{config.preset or 'run'}-{config.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for i in range(1000):
        path = root / (base if i == 0 else f"{base}-{i + 1}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not find a free run name under {root} starting with {base}")


def write_config(path: Path, config: RunConfig) -> None:
    atomic_write_text(path / "config.yaml", config.to_yaml())


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    atomic_write_text(path / "summary.json", json.dumps(clean(summary), indent=2) + os.linesep)
