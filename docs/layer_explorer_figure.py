"""Render the README's figure: the layer explorer of a run, as a PNG, through headless Chromium.

    python docs/layer_explorer_figure.py runs/<name> docs/layer_explorer.png

The page is the same static plotly figure ``workbench.figures.layer_explorer`` exports to HTML
(no kernel); Playwright drives Debian's ``chromium`` (``make system-browser``) to take the picture.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

import workbench as wb
from workbench.analysis.layouts import compute_layouts


def main(run_dir: str, out: str, points: int = 1000) -> None:
    run = wb.load_run(run_dir)
    layouts = compute_layouts(run, epochs=run.embedding_epochs()[-1:], max_points=points, n_epochs=200)
    fig = wb.plots.layer_explorer(layouts, probe=run.probe(), title=f"{run.config.preset} on {run.config.data.name}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Debian's chromium: sudo apt-get install chromium")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        page_path = Path(tmp) / "explorer.html"
        fig.write_html(page_path, include_plotlyjs=True)
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 900, "height": 640})
        page.goto(page_path.as_uri())
        page.wait_for_selector(".js-plotly-plot g.slider-container")
        page.screenshot(path=out)
        browser.close()
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:3])
