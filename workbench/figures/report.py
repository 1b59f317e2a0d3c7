"""One self-contained HTML page about one run or several: ``python -m workbench report RUN [RUN ...]``.

The page carries plotly.js once, inline, and every figure's data: it opens from a file with no
network and no kernel. For each run: its summary, what its config changes from its preset
(:func:`config_diff`), the training and loss curves, the collapse heat-maps, the spectra, the
decodability of the label and every factor, the layer x layer CKA and the layer explorer. For
several runs, first the comparison figures, seeds of one experiment drawn as mean +- std bands. A
figure whose data is missing (a run without embeddings, without diagnostics, still running) is
replaced by a note saying why.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import plotly.graph_objects as go
import yaml

from ..config import RunConfig, changed_fields, flat_fields
from ..errors import ConfigError
from ..runs import Run
from .common import as_run

NOT_SET = "(not set)"  # config_diff: a field one side lacks (an objective the other one does not have)


def config_diff(config: "RunConfig | Run | str | Path", ignore: Sequence[str] = ("name", "preset")) -> pd.DataFrame:
    """What a config changes from its preset: one row per dotted field whose value differs from
    ``make_config(config.preset)`` (the defaults, then the preset; the defaults alone when the config
    names no preset), sorted by field.

    Columns: ``field``, ``value`` (this config's), ``preset`` (the preset's); a field only one side has
    (an added or removed objective) shows ``"(not set)"`` on the other. ``ignore``: fields left out
    (by default the run's name and the preset's own name). ``df.attrs["preset"]`` names the preset.
    Accepts a :class:`RunConfig`, a :class:`Run` or a run directory.
    """
    from ..presets import make_config

    if not isinstance(config, RunConfig):
        config = as_run(config).config
    base = make_config(config.preset or None, validate=False)
    ours, theirs = flat_fields(config.to_dict()), flat_fields(base.to_dict())
    rows = [{"field": f, "value": ours.get(f, NOT_SET), "preset": theirs.get(f, NOT_SET)}
            for f in changed_fields(config, base, ignore=tuple(ignore))]
    table = pd.DataFrame(rows, columns=["field", "value", "preset"])
    table.attrs["preset"] = config.preset or "(defaults)"
    return table


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1280px; padding: 0 24px 48px; color: #222; }
h1 { margin-top: 24px; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 40px; }
h3 { margin: 28px 0 4px; } p.read { margin: 2px 0 8px; color: #444; max-width: 900px; }
p.note { background: #fff6dd; border-left: 4px solid #e0b040; padding: 8px 12px; max-width: 900px; }
table.data { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
table.data td, table.data th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
table.data th { background: #f3f3f3; } nav a { margin-right: 12px; }
"""


class _Page:
    """Sections of HTML text; figures are placed as divs whose data is inline."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.figures = 0
        self.notes = 0

    def add(self, text: str) -> None:
        self.parts.append(text)

    def heading(self, level: int, text: str, anchor: str | None = None) -> None:
        ident = f' id="{html.escape(anchor)}"' if anchor else ""
        self.add(f"<h{level}{ident}>{html.escape(text)}</h{level}>")

    def note(self, text: str) -> None:
        self.notes += 1
        self.add(f'<p class="note">{html.escape(text)}</p>')

    def figure(self, title: str, read: str, make: Callable[[], go.Figure]) -> None:
        """A figure under its title and how to read it; a note instead when its data is missing."""
        self.heading(3, title)
        if read:
            self.add(f'<p class="read">{html.escape(read)}</p>')
        try:
            fig = make()
        except Exception as exc:  # any missing piece of a run (file, table, epoch) is a note, not a failed page
            self.note(f"not drawn: {_reason(exc)}")
            return
        if not fig.data:  # e.g. the curves of a run that logged nothing yet
            self.note("not drawn: nothing was logged for this figure")
            return
        self.figures += 1
        self.add(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{self.figures}",
                             config={"responsive": True, "displaylogo": False}))

    def table(self, frame: pd.DataFrame, index: bool = False) -> None:
        self.add(frame.to_html(index=index, classes="data", border=0, na_rep="", escape=True))


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, (OSError, ValueError, KeyError)) else f"{type(exc).__name__}: {text}"


def _plain(value: Any) -> str:
    """A config value as YAML writes it in flow style (``[2, 4]``, ``null``, ``true``)."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


def _summary_table(run: Run) -> pd.DataFrame:
    summary = run.summary
    rows = [("status", summary.get("status", "no summary.json")), ("wall time", _seconds(summary.get("wall_s"))),
            ("epochs", summary.get("epochs")), ("steps", summary.get("steps")), ("device", summary.get("device")),
            ("precision", summary.get("precision"))]
    rows += [(key, f"{value:.4g}") for key, value in sorted(summary.get("headline", {}).items())
             if isinstance(value, (int, float)) and key.startswith("test/")]
    return pd.DataFrame([(k, v) for k, v in rows if v is not None], columns=["", "value"])


def _seconds(value: Any) -> str | None:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def _run_section(page: _Page, run: Run, anchor: str, *, pool: str, smooth: int, explorer: bool,
                 layout_points: int, umap_epochs: int | None) -> None:
    from . import cka, collapse_heatmaps, decodability, spectra
    from .curves import loss_curves, training_curves

    page.heading(2, f"Run {run.name}", anchor)
    page.add(f'<p class="read">{html.escape(str(run.path))}</p>')
    page.table(_summary_table(run))

    page.heading(3, "Config: what differs from the preset")
    try:
        diff = config_diff(run)
    except Exception as exc:
        page.note(f"no config: {_reason(exc)}")
    else:
        preset = diff.attrs["preset"]
        page.add(f'<p class="read">preset <b>{html.escape(preset)}</b>; the full config is '
                 f'{html.escape(str(run.path / "config.yaml"))} (<code>wb.load_run(path).config.to_yaml()</code>)</p>')
        if diff.empty:
            page.add('<p class="read">nothing: the preset as it is.</p>')
        else:
            page.table(diff.assign(value=diff["value"].map(_plain), preset=diff["preset"].map(_plain)))

    page.figure("Training curves", "losses, accuracies, and the monitors (RankMe, std) and schedules on their own "
                "axis; lines: training steps, dotted markers: validation per epoch.",
                lambda: training_curves(run, smooth=smooth))
    page.figure("Loss terms per objective", "every term of every objective; a term that drops to a constant while "
                "the others move is often a latent loss at its collapsed minimum.",
                lambda: loss_curves(run, smooth=smooth))
    page.figure("Collapse heat-maps", "x = epoch, y = layer; bright: healthy, dark: collapsed.",
                lambda: collapse_heatmaps(run, pool=pool))
    page.figure("Spectra", "eigenvalues of each layer's covariance, largest first, log scale; a cliff after k "
                "eigenvalues is a k-dimensional representation.", lambda: spectra(run, pool=pool))
    page.figure("Decodability", "a linear probe per layer for the label and every factor: where each level of "
                "abstraction can be read.", lambda: decodability(run, pool=pool))
    page.figure("CKA", "linear CKA between every pair of layers: bright blocks are layers computing alike.",
                lambda: cka(run, pool=pool))
    if explorer:
        page.figure("Layer explorer", "the probe images laid out in 2-D (UMAP) at every layer of the last saved "
                    "epoch: drag the slider to go deeper, pick a colouring in the menu.",
                    lambda: _explorer(run, pool, layout_points, umap_epochs))


def _explorer(run: Run, pool: str, points: int, umap_epochs: int | None) -> go.Figure:
    from ..analysis.layouts import compute_layouts
    from .explorer import layer_explorer

    saved = run.embedding_epochs()
    if not saved:
        raise FileNotFoundError(f"{run.path / 'embeddings'} holds no saved embeddings "
                                "(diagnostics.enabled or diagnostics.save_embeddings was false)")
    layouts = compute_layouts(run, epochs=saved[-1:], pool=pool, max_points=points, n_epochs=umap_epochs,
                              progress=False)
    try:
        probe = run.probe()
    except FileNotFoundError:
        probe = None
    return layer_explorer(layouts, probe=probe, title=run.name)


def _comparison(page: _Page, runs: list[Run], pool: str, smooth: int) -> None:
    from .compare import compare_runs, metric_by_layer

    page.heading(2, "Comparison", "comparison")
    page.add('<p class="read">runs whose configs differ only by the seed are one experiment: drawn as the mean '
             'with a band of +- one standard deviation over the seeds.</p>')
    columns: list[str] = []
    for run in runs:
        columns += [c for c in run.metrics.columns if c not in columns]
    accuracy = [c for c in columns if c.startswith("val/") and c.rsplit("/", 1)[-1].startswith("acc")]
    for metric in ["val/loss", *accuracy[:2]]:
        page.figure(f"{metric} across runs", "", lambda m=metric: compare_runs(runs, m, smooth=smooth))
    for metric in ("linear_acc", "rankme"):
        page.figure(f"{metric} by layer", "the last diagnostics epoch of each run.",
                    lambda m=metric: metric_by_layer(runs, m, pool=pool))


def report_html(runs: "Sequence[Run | str | Path] | Run | str | Path", *, title: str | None = None, pool: str = "mean",
                smooth: int = 5, explorer: bool = True, layout_points: int = 1000,
                umap_epochs: int | None = 200) -> str:
    """The report page as HTML text (see the module docstring for what it holds) of ``runs``: run
    directories or :class:`Run` handles, a directory of runs (a sweep's) standing for every run in it.

    pool: which embedding every per-layer figure shows (``mean`` or ``cls``). smooth: rolling mean
    of the training curves. explorer: include the layer explorer (its UMAP layouts are computed, or
    read from ``<run>/layouts/``); layout_points: probe images it lays out; umap_epochs: UMAP
    optimisation epochs per layout (``None``: umap-learn's default).
    """
    from plotly.offline import get_plotlyjs

    if isinstance(runs, (Run, str, Path)):
        runs = [runs]
    runs = [run for source in runs for run in _load(source)]
    if not runs:
        raise ConfigError("runs", [], "at least one run directory")
    names = [r.name for r in runs]
    anchors = [f"run-{i}" for i in range(len(runs))]
    title = title or (f"Report of run {names[0]}" if len(runs) == 1 else f"Report of {len(runs)} runs")
    page = _Page()
    page.heading(1, title)
    if len(runs) > 1:
        links = [("comparison", "comparison"), *zip(anchors, names)]
        page.add("<nav>" + "".join(f'<a href="#{a}">{html.escape(n)}</a>' for a, n in links) + "</nav>")
        _comparison(page, runs, pool, smooth)
    for run, anchor in zip(runs, anchors):
        _run_section(page, run, anchor, pool=pool, smooth=smooth, explorer=explorer, layout_points=layout_points,
                     umap_epochs=umap_epochs)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head>\n<body>\n"
            + "\n".join(page.parts) + "\n</body></html>\n")


def _load(source: "Run | str | Path") -> list[Run]:
    """A run, or every run directly under a directory of runs (a sweep), in name order."""
    if isinstance(source, Run) or (Path(source) / "config.yaml").is_file():
        return [as_run(source)]
    inner = sorted(p for p in Path(source).iterdir() if (p / "config.yaml").is_file()) if Path(source).is_dir() else []
    if not inner:
        raise ConfigError("run", str(source), "a run directory holding config.yaml, or a directory of runs "
                                              "(python -m workbench runs lists them)")
    return [as_run(p) for p in inner]


def write_report(runs: "Sequence[Run | str | Path] | Run | str | Path", out: str | Path, **options: Any) -> Path:
    """Write :func:`report_html` to ``out`` atomically (the old file or the new one, never half of
    one) and return its path. ``options`` go to :func:`report_html`."""
    from ..atomic import atomic_open

    text = report_html(runs, **options)
    out = Path(out)
    with atomic_open(out, "wb") as f:
        f.write(text.encode("utf-8"))
    return out
