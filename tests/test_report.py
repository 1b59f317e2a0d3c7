"""The one-page HTML report (``python -m workbench report``), the config-diff table it shares with
the quickstart, and the training-curves figure that keeps monitors off the loss axis."""

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from notebook_fixtures import artifact_dir, chromium_or_skip, tiny_run

import workbench as wb
from workbench.cli import main
from workbench.config import ObjectiveConfig, RunConfig
from workbench.figures.report import NOT_SET, config_diff, report_html, write_report
from workbench.runs import Run, write_config

# ---- config_diff ---------------------------------------------------------------------------


def test_config_diff_by_hand():
    preset = wb.make_config("supervised")
    config = wb.make_config("supervised", ["model.depth=3", "name=mine", "objectives.supervised.weight=0.5",
                                           "objectives.recon.kind=recon"])
    diff = config_diff(config)
    assert diff.attrs["preset"] == "supervised"
    assert diff.to_dict("records") == [
        {"field": "model.depth", "value": 3, "preset": preset.model.depth},
        {"field": "objectives.recon.enabled", "value": True, "preset": NOT_SET},
        {"field": "objectives.recon.kind", "value": "recon", "preset": NOT_SET},
        {"field": "objectives.recon.layers", "value": "last", "preset": NOT_SET},
        {"field": "objectives.recon.params", "value": {}, "preset": NOT_SET},
        {"field": "objectives.recon.weight", "value": 1.0, "preset": NOT_SET},
        {"field": "objectives.supervised.weight", "value": 0.5, "preset": 1.0},
    ]  # the name is left out: every run has its own
    assert config_diff(preset).empty


def test_config_diff_without_a_preset_compares_with_the_defaults_and_reads_run_directories(tmp_path):
    config = RunConfig(name="plain")
    config.trainer.max_epochs = 3
    config.objectives = {}
    write_config(tmp_path / "plain", config)
    diff = config_diff(tmp_path / "plain")
    assert diff.attrs["preset"] == "(defaults)"
    assert diff.to_dict("records") == [
        {"field": "objectives", "value": {}, "preset": NOT_SET},
        {"field": "objectives.supervised.enabled", "value": NOT_SET, "preset": True},
        {"field": "objectives.supervised.kind", "value": NOT_SET, "preset": None},
        {"field": "objectives.supervised.layers", "value": NOT_SET, "preset": "last"},
        {"field": "objectives.supervised.params", "value": NOT_SET, "preset": {}},
        {"field": "objectives.supervised.weight", "value": NOT_SET, "preset": 1.0},
        {"field": "trainer.max_epochs", "value": 3, "preset": 10},
    ]


# ---- training curves: monitors off the loss axis -----------------------------------------------


def curves_run(root, monitors: bool = True) -> Run:
    config = RunConfig(name="curves", preset="supervised")
    config.objectives = {"supervised": ObjectiveConfig(),
                         "recon": ObjectiveConfig(weight={"schedule": "linear", "start": 1.0, "end": 0.0})}
    path = root / ("curves" if monitors else "plain")
    write_config(path, config)
    metrics = {"epoch": [0, 0], "step": [2, 4], "train/loss": [1.4, 1.2], "train/supervised/ce": [1.1, 1.0],
               "train/supervised/acc": [0.3, 0.4], "train/recon/mse": [0.3, 0.2], "train/lr": [1e-3, 1e-3]}
    if monitors:
        metrics.update({"train/monitor/rankme": [20.0, 21.0], "train/monitor/std_l2": [0.1, 0.1],
                        "train/recon/weight": [1.0, 0.5], "train/teacher/momentum": [0.996, 0.997]})
    table = pd.concat([pd.DataFrame(metrics), pd.DataFrame({"epoch": [0], "step": [4], "val/loss": [1.3]})])
    table.to_csv(path / "metrics.csv", index=False)
    return Run(path)


def test_training_curves_keep_monitors_and_schedules_off_the_loss_axis(tmp_path):
    fig = wb.plots.training_curves(curves_run(tmp_path))
    axes = {}
    for trace in fig.data:
        axes.setdefault(trace.yaxis, set()).add(trace.name)
    assert axes == {
        "y": {"train/loss", "train/supervised/ce", "train/recon/mse", "val/loss"},
        "y2": {"train/supervised/acc"},
        "y3": {"train/monitor/rankme", "train/monitor/std_l2", "train/recon/weight", "train/teacher/momentum"},
    }
    assert [a.text for a in fig.layout.annotations] == ["losses", "accuracy", "monitors and schedules"]
    loss_values = [v for t in fig.data if t.yaxis == "y" for v in t.y]
    assert max(loss_values) == 1.4  # the loss axis spans the losses alone: no RankMe of 20 on it


def test_training_curves_without_monitors_have_two_panels(tmp_path):
    fig = wb.plots.training_curves(curves_run(tmp_path, monitors=False))
    assert {t.yaxis for t in fig.data} == {"y", "y2"}
    assert [a.text for a in fig.layout.annotations] == ["losses", "accuracy"]


# ---- the report of a real run ------------------------------------------------------------------


def newplot_calls(page: str) -> dict[str, list]:
    """div id -> the trace list passed to ``Plotly.newPlot`` in the page (decoded JSON)."""
    decoder = json.JSONDecoder()
    calls = {}
    for match in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', page):
        data, _ = decoder.raw_decode(page, match.end())
        calls[match.group(1)] = data
    return calls


def has_data(trace: dict) -> bool:
    return any(np.size(trace.get(key)) > 0 for key in ("x", "y", "z") if trace.get(key) is not None)


def assert_self_contained(page: str) -> None:
    assert not re.search(r"<script[^>]*\bsrc=", page, re.I), "the page must load no script"
    assert page.count("plotly.js v") == 1, "plotly.js inline, once"
    assert "cdn." not in page.lower().split("</head>")[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory)


def test_the_report_of_one_run_draws_every_figure_with_data(run):
    page = report_html(run, explorer=False)
    assert_self_contained(page)
    calls = newplot_calls(page)
    # training curves, loss terms, collapse heat-maps, spectra, decodability, CKA
    assert len(calls) == 6
    for div, traces in calls.items():
        assert any(has_data(t) for t in traces), div
    assert 'class="note"' not in page
    assert "<td>model.depth</td>" in page and "<td>2</td>" in page  # the config diff table


def test_a_run_without_embeddings_or_diagnostics_gets_notes_not_a_crash(run, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(run.path, bare, ignore=shutil.ignore_patterns("embeddings", "layouts", "diagnostics.csv"))
    page = report_html(bare, layout_points=50, umap_epochs=5)
    assert len(newplot_calls(page)) == 2  # the two curve figures
    notes = re.findall(r'<p class="note">(.*?)</p>', page)
    assert len(notes) == 5  # heat-maps, spectra, decodability, CKA, explorer
    assert all(note.startswith("not drawn: ") for note in notes)
    assert any("diagnostics" in note for note in notes) and any("embeddings" in note for note in notes)
    (bare / "metrics.csv").unlink()  # a run that logged nothing yet: the curves are notes too
    page = report_html(bare, layout_points=50, umap_epochs=5)
    assert not newplot_calls(page) and len(re.findall(r'<p class="note">', page)) == 7


def test_several_runs_add_the_comparison_with_seed_bands(run, tmp_path):
    sweep = tmp_path / "sweep"  # a directory of runs stands for every run in it
    for seed in (0, 1):
        shutil.copytree(run.path, sweep / f"tiny-seed{seed}", ignore=shutil.ignore_patterns("layouts"))
        config = wb.load_run(sweep / f"tiny-seed{seed}").config
        config.seed = seed
        write_config(sweep / f"tiny-seed{seed}", config)
    (sweep / "logs").mkdir()  # not a run: left out
    page = report_html(sweep, explorer=False)
    assert 'id="comparison"' in page and "Run tiny-seed0" in page and "Run tiny-seed1" in page
    calls = list(newplot_calls(page).values())
    assert len(calls) == 4 + 2 * 6  # val/loss, val accuracy, linear_acc and rankme by layer; then each run
    bands = [t for traces in calls[:4] for t in traces if t.get("fill") == "toself"]
    assert len(bands) == 4  # one experiment of two seeds: one band per comparison figure


def test_the_command_writes_the_page_atomically(run, tmp_path, capsys):
    out = tmp_path / "out" / "report.html"
    assert main(["report", str(run.path), "--out", str(out), "--no-explorer"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary file left
    assert len(newplot_calls(out.read_text(encoding="utf-8"))) == 6
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.html")]) == 2
    assert "a run directory holding config.yaml" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


@pytest.mark.slow  # UMAP layouts and a browser
def test_the_page_draws_every_figure_offline_and_the_layer_slider_moves_the_points(run, tmp_path):
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    from workbench.analysis.layouts import compute_layouts

    path = write_report(run, tmp_path / "report.html", layout_points=100, umap_epochs=20)
    page_text = path.read_text(encoding="utf-8")
    assert_self_contained(page_text)
    assert len(newplot_calls(page_text)) == 7 and 'class="note"' not in page_text
    # the report cached its layouts in the run directory: the same call reads them back
    layouts = compute_layouts(run, epochs=run.embedding_epochs()[-1:], max_points=100, n_epochs=20, progress=False)
    epoch = layouts.epochs[-1]
    requested = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_context(offline=True, viewport={"width": 1280, "height": 900}).new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            def only_the_file(route):
                if route.request.url.startswith("file:"):
                    route.continue_()
                else:
                    requested.append(route.request.url)
                    route.abort()

            page.route("**/*", only_the_file)
            page.goto(path.as_uri(), wait_until="load", timeout=120_000)
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length === 7", timeout=60_000)
            drawn = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
                traces: (el._fullData || []).length,
                marks: el.querySelectorAll('.scatterlayer .trace path, .heatmaplayer image, .point').length}))""")
            assert len(drawn) == 7 and all(d["traces"] > 0 and d["marks"] > 0 for d in drawn), drawn
            explorer = "() => Array.from(document.querySelector('#figure-7')._fullData[0].x)"
            np.testing.assert_allclose(page.evaluate(explorer), layouts.coords[(epoch, layouts.layers[-1])][:, 0],
                                       atol=1e-3)
            page.locator("#figure-7").scroll_into_view_if_needed()
            rail = page.locator("#figure-7 g.slider-container rect.slider-rail-rect").bounding_box()
            page.mouse.click(rail["x"] + 2, rail["y"] + rail["height"] / 2)  # the first step: layer 0
            page.wait_for_function(
                "x0 => { const p = document.querySelector('#figure-7');"
                " return p.layout.sliders[0].active === 0 && Math.abs(p._fullData[0].x[0] - x0) < 1e-3; }",
                arg=float(layouts.coords[(epoch, 0)][0, 0]))
            np.testing.assert_allclose(page.evaluate(explorer), layouts.coords[(epoch, 0)][:, 0], atol=1e-3)
            page.screenshot(path=str(artifact_dir("report") / "report.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()
    assert not requested, requested
