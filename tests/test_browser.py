"""The layer explorer notebook in a real browser: JupyterLab on 127.0.0.1, Debian's Chromium driven by
Playwright, every cell run, the plotly figures checked for data, and the explorer's layer slider moved
with the keyboard as a person would.

Screenshots are kept in tests/artifacts/browser/ (git-ignored).
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import numpy as np
import pytest
from notebook_fixtures import NOTEBOOKS, artifact_dir, chromium_or_skip, explorer_parameters, tiny_run

pytestmark = pytest.mark.slow

# JupyterLab settings for a predictable page: every cell stays in the DOM (no windowing), no news or
# update checks (nothing may leave the machine).
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
}

# The state of the open notebook, read from JupyterLab's own model (exposed as window.jupyterapp).
NOTEBOOK_STATE = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.content || !panel.sessionContext) return null;
    const cells = panel.content.widgets.filter(c => c.model.type === 'code');
    const errors = [];
    for (const c of cells) {
        for (const o of c.model.outputs.toJSON()) {
            if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
        }
    }
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    return {cells: cells.length, executed: cells.filter(c => c.model.executionCount !== null).length,
            errors: errors, kernel: kernel ? kernel.status : 'none'};
}"""

# Every plotly figure on the page: its title, traces, points per trace (from plotly's own resolved
# data: typed arrays decoded), marks drawn in the SVG, and the explorer's coordinates.
PLOTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => {
    const full = el._fullData || [];
    const explorer = full.find(t => t.name === 'probe');
    return {
        title: (el.layout && el.layout.title && el.layout.title.text) || '',
        traces: full.length,
        points: full.map(t => t._length || (t.z ? t.z.length : 0) || 0),
        marks: el.querySelectorAll('.scatterlayer .trace path, .heatmaplayer image').length,
        explorer: explorer ? {x: Array.from(explorer.x), y: Array.from(explorer.y)} : null,
    };
})"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a temporary directory holding the explorer notebook (parameters for the small
    run injected); yields (url of the notebook, run). The server and its kernels are stopped after."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    run = tiny_run(tmp_path_factory)
    root = tmp_path_factory.mktemp("lab")
    nb = load_notebook_node(str(NOTEBOOKS / "05_layer_explorer.ipynb"))
    nb = parameterize_notebook(nb, explorer_parameters(run, root / "runs", interactive=True))
    nbformat.write(nb, root / "explore.ipynb")
    settings = root / ".settings"
    for name, values in SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))

    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces"), "JUPYTER_RUNTIME_DIR": str(root / ".runtime")}
    log = open(root / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=", "--ServerApp.port_retries=0", *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/api/status",
                                                 headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not start: {(root / 'jupyterlab.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/lab/tree/explore.ipynb?token={token}", run
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server's own process group: it and its kernels
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()


def _no_new_layout(*args, **kwargs):
    raise AssertionError("the layouts are not those the notebook cached (their parameters differ)")


def test_the_explorer_notebook_runs_in_chromium_and_its_layer_slider_moves_the_points(lab, monkeypatch):
    chromium = chromium_or_skip()
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    from workbench.analysis import layouts as layouts_module
    from workbench.analysis.layouts import compute_layouts

    url, run = lab
    shots = artifact_dir("browser")
    start, phases = time.monotonic(), {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, timeout=120_000)
            page.wait_for_function(f"() => {{ const s = ({NOTEBOOK_STATE})(); return s && s.kernel === 'idle'; }}",
                                   timeout=120_000)
            phases["notebook open, kernel idle"] = time.monotonic() - start
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            page.wait_for_function(
                f"() => {{ const s = ({NOTEBOOK_STATE})(); return s && s.kernel === 'idle' &&"
                " (s.errors.length > 0 || s.executed === s.cells); }",
                timeout=300_000, polling=500,
            )
            state = page.evaluate(NOTEBOOK_STATE)
            assert not state["errors"], state["errors"]
            phases["all cells run"] = time.monotonic() - start

            # explorer, dashboard (heat-maps, spectra, decodability), spectra, decodability, CKA, loss curves
            try:
                page.wait_for_function(f"() => {{ const plots = ({PLOTS})(); return plots.length >= 8 &&"
                                       " plots.every(p => p.traces > 0 && p.marks > 0); }",
                                       timeout=300_000, polling=500)
            except PlaywrightTimeout:
                summary = [(p["title"][:50], p["traces"], p["marks"]) for p in page.evaluate(PLOTS)]
                pytest.fail(f"the figures did not all draw within 300 s: (title, traces, marks) = {summary}")
            finally:
                page.screenshot(path=str(shots / "after_run_all.png"))
            phases["all figures drawn"] = time.monotonic() - start
            plots = page.evaluate(PLOTS)
            assert len(plots) == 8, [p["title"] for p in plots]
            for plot in plots:
                assert plot["traces"] > 0 and sum(plot["points"]) > 0 and plot["marks"] > 0, plot
            (explorer,) = [p for p in plots if p["explorer"] is not None]
            assert "layer 2" in explorer["title"]
            page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "explorer_layer2.png"))

            # move the layer slider one step down with the keyboard, as a person would
            slider = page.locator(".widget-slider").filter(
                has=page.locator(".widget-label", has_text="layer")).locator(".noUi-handle")
            slider.focus()
            slider.press("ArrowLeft")
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('.js-plotly-plot')).some(el =>"
                " el.data && el.data[0] && el.data[0].name === 'probe' && el.layout.title.text.includes('layer 1'))",
                timeout=60_000,
            )
            moved = next(p for p in page.evaluate(PLOTS) if p["explorer"] is not None)
            phases["slider moved the points"] = time.monotonic() - start

            # click a point: its image and factors appear in the side panel
            explorer_plot = page.locator(".js-plotly-plot").filter(has_text="layer 1 (mean pool)").first
            box = explorer_plot.locator(".scatterlayer .point").first.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_function("() => Array.from(document.querySelectorAll('.widget-html-content'))"
                                   ".some(el => el.textContent.includes('probe id'))", timeout=60_000)
            page.wait_for_function("() => Array.from(document.querySelectorAll('img.widget-image'))"
                                   ".some(img => img.getAttribute('src') && img.naturalWidth === 160)", timeout=60_000)
            page.screenshot(path=str(shots / "explorer_layer1_clicked.png"))
        finally:
            browser.close()
    print(f"screenshots in {shots}; seconds since the page was opened: {phases}")

    assert moved["explorer"]["x"] != explorer["explorer"]["x"]
    # the points now sit at layer 1's layout (the notebook cached it in the run directory). UMAP must
    # not run again: a second optimisation need not land on the same points, the cached ones are exact
    monkeypatch.setattr(layouts_module, "_umap", _no_new_layout)
    monkeypatch.setattr(layouts_module, "_aligned", _no_new_layout)
    layouts = compute_layouts(run, method="warm", max_points=200, n_epochs=20, progress=False)
    epoch = layouts.epochs[-1]
    np.testing.assert_allclose(explorer["explorer"]["x"], layouts.coords[(epoch, 2)][:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(moved["explorer"]["x"], layouts.coords[(epoch, 1)][:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(moved["explorer"]["y"], layouts.coords[(epoch, 1)][:, 1], rtol=1e-5, atol=1e-6)
