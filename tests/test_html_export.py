"""An executed notebook exported to HTML carries plotly.js and every figure's data inline, and shows
every figure in a browser with the network switched off."""

import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest
from notebook_fixtures import NOTEBOOKS, artifact_dir, chromium_or_skip, explorer_parameters, tiny_run

pytestmark = pytest.mark.slow  # executes a notebook


def newplot_calls(html: str) -> dict[str, list]:
    """div id -> the trace list passed to ``Plotly.newPlot`` in an exported page (decoded JSON)."""
    decoder = json.JSONDecoder()
    calls = {}
    for match in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', html):
        data, _ = decoder.raw_decode(html, match.end())
        calls[match.group(1)] = data
    return calls


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """notebooks/05_layer_explorer executed headless (papermill, INTERACTIVE False) on a small run,
    then exported with nbconvert: (run, executed notebook, html text, html path)."""
    run = tiny_run(tmp_path_factory)
    out = tmp_path_factory.mktemp("export")
    executed = out / "05_layer_explorer.ipynb"
    params = explorer_parameters(run, out / "runs", interactive=False)
    args = [a for k, v in params.items() for a in ("-p", k, str(v))]
    result = subprocess.run(
        [sys.executable, "-m", "papermill", str(NOTEBOOKS / "05_layer_explorer.ipynb"), str(executed),
         "--cwd", str(NOTEBOOKS), "-k", "python3", *args],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    result = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(executed)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    page = executed.with_suffix(".html")
    return run, json.loads(executed.read_text()), page.read_text(), page


def plotly_outputs(notebook: dict) -> list[dict]:
    return [o["data"]["application/vnd.plotly.v1+json"] for c in notebook["cells"] for o in c.get("outputs", [])
            if "application/vnd.plotly.v1+json" in o.get("data", {})]


def test_the_page_embeds_plotly_js_and_loads_no_plotly_script(exported):
    _, _, html, _ = exported
    assert not re.search(r"<script[^>]*\bsrc=[\"'][^\"']*plot\.?ly", html, re.I), "plotly.js must not come from a CDN"
    header = html.find("plotly.js v")
    assert header > 0, "the plotly.js bundle is not in the page"
    opening = html.rfind("<script", 0, header)
    assert "src=" not in html[opening:html.find(">", opening)], "plotly.js must be inline, not loaded"
    assert html.count("plotly.js v") == 1  # the library once, however many figures


def test_every_figure_of_the_notebook_is_in_the_page_with_its_data(exported):
    _, notebook, html, _ = exported
    figures = plotly_outputs(notebook)
    # explorer, dashboard (heat-maps, spectra, decodability), spectra, decodability, CKA, loss curves
    assert len(figures) == 8
    calls = newplot_calls(html)
    assert len(calls) == len(figures)
    embedded = list(calls.values())
    for figure in figures:
        assert figure["data"] in embedded, figure["layout"].get("title", {}).get("text")


def test_the_explorer_points_in_the_page_are_the_last_layers_layout(exported, monkeypatch):
    from workbench.analysis import layouts as layouts_module
    from workbench.analysis.layouts import compute_layouts

    run, notebook, html, _ = exported
    # the notebook cached its layouts in the run directory: the same call reads them back. UMAP must
    # not run again: a second optimisation need not land on the same points, the cached ones are exact
    monkeypatch.setattr(layouts_module, "_umap", _no_new_layout)
    monkeypatch.setattr(layouts_module, "_aligned", _no_new_layout)
    layouts = compute_layouts(run, method="warm", max_points=200, n_epochs=20, progress=False)
    last = layouts.coords[(layouts.epochs[-1], layouts.layers[-1])]
    calls = newplot_calls(html)
    explorer = next(data for data in calls.values() if data[0].get("name") == "probe")
    np.testing.assert_allclose(explorer[0]["x"], last[:, 0], atol=1e-3)
    np.testing.assert_allclose(explorer[0]["y"], last[:, 1], atol=1e-3)
    assert [c[0] for c in explorer[0]["customdata"]] == [int(i) for i in layouts.ids]


def _no_new_layout(*args, **kwargs):
    raise AssertionError("the layouts are not those the notebook cached (their parameters differ)")


def test_the_page_shows_every_figure_with_the_network_off(exported):
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    _, notebook, _, page_path = exported
    expected = len(plotly_outputs(notebook))
    shots = artifact_dir("html_export")
    requested = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_context(offline=True, viewport={"width": 1280, "height": 900}).new_page()

            def only_the_file(route):
                if route.request.url.startswith("file:"):
                    route.continue_()
                else:  # MathJax and require.js from a CDN: refused, as on a machine without a network
                    requested.append(route.request.url)
                    route.abort()

            page.route("**/*", only_the_file)
            page.goto(page_path.as_uri(), wait_until="load", timeout=120_000)
            page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {expected}", timeout=60_000)
            drawn = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
                traces: el.data.length,
                marks: el.querySelectorAll('.point, .heatmaplayer image, .scatterlayer .trace path').length}))""")
            page.locator(".js-plotly-plot").first.screenshot(path=str(shots / "explorer_offline.png"))
            page.screenshot(path=str(shots / "page_offline.png"), full_page=True)
        finally:
            browser.close()
    print(f"screenshots in {shots}")
    assert len(drawn) == expected
    assert all(d["traces"] > 0 and d["marks"] > 0 for d in drawn), drawn
    assert not any("plot.ly" in url for url in requested), requested


def test_the_headless_run_writes_finite_headline_numbers(exported, tmp_path):
    """The numbers the explorer notebook prints are in <RUNS_DIR>/05_layer_explorer/headline.json."""
    from workbench.analysis import headline

    run, notebook, _, page = exported
    numbers = headline.load("05_layer_explorer", page.parent / "runs")
    assert set(numbers) == {"last_layer_linear_acc", "last_layer_rankme", "best_layer_linear_acc"}
    assert all(math.isfinite(v) for v in numbers.values())
    assert 0.0 <= numbers["last_layer_linear_acc"] <= numbers["best_layer_linear_acc"] <= 1.0
    assert numbers["last_layer_rankme"] >= 1.0
