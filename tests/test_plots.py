"""Figures: every number a figure shows is checked against inputs built by hand, and against what
the exported HTML page (no kernel) hands to plotly.js."""

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from workbench import figures as plots
from workbench.analysis.layouts import Layouts
from workbench.config import ObjectiveConfig, RunConfig
from workbench.data.base import Factor, ImageSet
from workbench.data.shapes import ShapesParams, load_shapes
from workbench.errors import ConfigError
from workbench.figures import FigureDataError
from workbench.runs import Run, write_config
from workbench.training.diagnostics_callback import save_probe


def test_sample_grid_has_one_image_per_sample_with_every_factor_on_hover():
    data = load_shapes(ShapesParams(num_images=20), cache_dir=None)
    fig = plots.sample_grid(data.train.images[:10].numpy(), data.train.factors[:10].numpy(), data.factors, cols=4)
    images = [t for t in fig.data if t.type == "image"]
    assert len(images) == 10
    np.testing.assert_array_equal(images[3].z, data.train.images[3].permute(1, 2, 0).numpy())
    first = data.train.factors[0]
    shape = data.factors[3].values[int(first[3])]
    assert f"shape: {shape}" in images[0].hovertemplate and "count: " in images[0].hovertemplate
    assert shape in fig.layout.annotations[0].text


def test_sample_grid_repeats_grey_images_over_rgb():
    images = torch.arange(2 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4).numpy()
    fig = plots.sample_grid(images, labels=["a", "b"], cols=2)
    z = np.asarray(fig.data[1].z)
    assert z.shape == (4, 4, 3) and (z[..., 0] == z[..., 2]).all() and z[0, 1, 0] == 17
    assert [a.text for a in fig.layout.annotations] == ["a", "b"]


# ---- shared inputs, built by hand so that every expected number is known ------------------------

SPECS = [
    Factor("color", "categorical", "low", "hue", values=("red", "green", "blue")),
    Factor("size", "continuous", "mid", "radius", range=(0.0, 1.0)),
    Factor("count", "categorical", "high", "objects", values=("1", "2")),
]
METRICS = ["rankme", "effective_rank", "std_l2", "uniformity", "linear_acc", "knn_acc", "factor/color",
           "factor/size", "factor/count"]
EPOCHS, LAYERS = [0, 2], [0, 1, 2]


def value(epoch: int, layer: int, pool: str, metric: str) -> float:
    """A distinct, easily recomputed number for every cell of the synthetic diagnostics table."""
    index = METRICS.index(metric) if metric in METRICS else 20 + int(metric.split("/")[1])
    return epoch * 100 + layer * 10 + index + (0.5 if pool == "cls" else 0.0)


def make_diagnostics() -> pd.DataFrame:
    rows = []
    for epoch in EPOCHS:
        for pool in ("mean", "cls"):
            layers = [l for l in LAYERS if not (pool == "cls" and l == 0)]  # no CLS at the patch embedding
            for layer in layers:
                for metric in METRICS + [f"cka/{b}" for b in layers]:
                    rows.append((epoch, layer, pool, metric, value(epoch, layer, pool, metric)))
        for layer in LAYERS:
            rows.append((epoch, layer, "tokens", "token_cosine", 0.1 * layer + epoch))
    return pd.DataFrame(rows, columns=["epoch", "layer", "pool", "metric", "value"])


def spectrum(epoch: int, layer: int) -> np.ndarray:
    out = np.array([1.0, 0.5, 0.25, 0.1, 0.0], dtype=np.float32) / (1 + layer + epoch)
    return out


def write_run(root: Path, name: str, seed: int = 0, weight: float = 1.0, val_loss=(2.0, 1.0),
              diagnostics: pd.DataFrame | None = None, enabled: bool = True) -> Run:
    """A run directory as fit writes it: config, metrics.csv, diagnostics.csv, embeddings, probe."""
    config = RunConfig(name=name, seed=seed, runs_dir=str(root), preset=name.split("-")[0])
    config.objectives = {
        "supervised": ObjectiveConfig(weight=weight),
        "recon": ObjectiveConfig(weight={"schedule": "linear", "start": 1.0, "end": 0.0}),
    }
    config.diagnostics.enabled = enabled
    path = root / name
    (path / "embeddings").mkdir(parents=True)
    write_config(path, config)
    steps = [1, 3, 5, 7]
    m = pd.DataFrame({
        "epoch": [0, 0, 1, 1], "step": steps,
        "train/loss": [4.0, 3.0, 2.0, 1.0], "train/supervised/ce": [2.0, 1.0, 1.0, 0.0],
        "train/supervised/acc": [0.1, 0.2, 0.3, 0.4], "train/recon/mse": [1.0, 2.0, 3.0, 4.0],
        "train/recon/weight": [1.0, 0.7, 0.4, 0.1], "train/lr": [1e-3] * 4, "train/monitor/rankme": [5.0] * 4,
    })
    val = pd.DataFrame({"epoch": [0, 1], "step": [3, 7], "val/loss": list(val_loss),
                        "val/supervised/ce": [1.5, 0.5], "val/recon/mse": [2.5, 3.5]})
    pd.concat([m, val], ignore_index=True).to_csv(path / "metrics.csv", index=False)
    if enabled:
        (diagnostics if diagnostics is not None else make_diagnostics()).to_csv(path / "diagnostics.csv", index=False)
        for epoch in EPOCHS:
            arrays = {f"spectrum_l{l}_mean": spectrum(epoch, l) for l in LAYERS}
            arrays.update({f"spectrum_l{l}_cls": spectrum(epoch, l) for l in LAYERS[1:]})
            np.savez(path / "embeddings" / f"epoch={epoch:03d}.npz", **arrays)
        images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
        factors = torch.tensor([[0, 0.25, 0], [1, 0.5, 1], [2, 0.75, 0], [1, 1.0, 1]], dtype=torch.float32)
        save_probe(path / "embeddings", ImageSet(images, torch.tensor([0, 1, 0, 1]), factors), ["a", "b"], SPECS)
    return Run(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    root = tmp_path_factory.mktemp("plots")
    return {
        "run": write_run(root, "lejepa-s0"),
        "seed1": write_run(root, "lejepa-s1", seed=1, val_loss=(4.0, 2.0),
                           diagnostics=make_diagnostics().assign(value=lambda t: t["value"] + 2.0)),
        "other": write_run(root, "supervised-s0", weight=0.5, val_loss=(3.0, 3.0)),
        "off": write_run(root, "off", enabled=False),
    }


def make_layouts(n: int = 12) -> Layouts:
    rng = np.random.default_rng(1)
    coords = {(e, l): rng.normal(size=(n, 2)).astype(np.float32) * (l + 1) for e in EPOCHS for l in LAYERS}
    factors = np.stack([np.arange(n) % 3, np.linspace(0.0, 1.0, n), np.arange(n) % 2], axis=1)
    return Layouts(coords, ids=np.arange(100, 100 + n), labels=np.arange(n) % 2, label_names=["cat", "dog"],
                   factors=factors, factor_names=["color", "size", "count"])


def figure_in_html(fig) -> tuple[list[dict], dict]:
    """The (data, layout) that the exported HTML page hands to plotly.js, parsed back from the page,
    with base64 arrays decoded: what a reader without a kernel actually gets."""
    html = fig.to_html(include_plotlyjs=True, full_html=True)
    assert "<script src=" not in html, "the page must not load anything from the network"
    start = html.index("Plotly.newPlot(")
    start = html.index(",", start) + 1  # past the div id
    decoder = json.JSONDecoder()
    data, end = decoder.raw_decode(html, start + len(html[start:]) - len(html[start:].lstrip()))
    rest = html[end:].lstrip()[1:].lstrip()
    layout, _ = decoder.raw_decode(rest)

    def decode(value):
        if isinstance(value, dict) and set(value) >= {"dtype", "bdata"}:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
            shape = value.get("shape")  # "rows, cols" for a matrix
            return array.reshape([int(n) for n in str(shape).split(",")]) if shape is not None else array
        if isinstance(value, dict):
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    return decode(data), layout


# ---- layer explorer -------------------------------------------------------------------------------


def test_layer_explorer_slider_carries_every_layers_coordinates():
    layouts = make_layouts()
    fig = plots.layer_explorer(layouts)  # default: the last epoch, starting at the last layer
    slider = fig.layout.sliders[0]
    assert [s.label for s in slider.steps] == ["0", "1", "2"] and slider.active == 2
    for step, layer in zip(slider.steps, LAYERS):
        assert step.method == "restyle"
        expected = layouts.coords[(2, layer)]
        np.testing.assert_allclose(step.args[0]["x"][0], expected[:, 0], atol=1e-3)
        np.testing.assert_allclose(step.args[0]["y"][0], expected[:, 1], atol=1e-3)
    np.testing.assert_allclose(fig.data[0].x, layouts.coords[(2, 2)][:, 0], atol=1e-3)
    first = plots.layer_explorer(layouts, epoch=0, layer=0)
    np.testing.assert_allclose(first.data[0].y, layouts.coords[(0, 0)][:, 1], atol=1e-3)
    assert first.layout.sliders[0].active == 0


def test_layer_explorer_menu_colours_by_label_and_every_factor():
    layouts = make_layouts()
    probe = {"factor_specs": SPECS}
    fig = plots.layer_explorer(layouts, colour_by="color", probe=probe)
    menu = fig.layout.updatemenus[0]
    assert [b.label for b in menu.buttons] == ["label", "color", "size", "count"] and menu.active == 1
    color = menu.buttons[1].args[0]
    assert color["marker.colorbar.ticktext"] == [["red", "green", "blue"]]
    assert color["marker.colorbar.tickvals"] == [[0, 1, 2]] and color["marker.cmin"] == [-0.5]
    assert color["marker.color"] == [list(np.arange(12) % 3)]
    steps = color["marker.colorscale"][0]  # stepped: one flat colour per category
    assert len(steps) == 6 and steps[0][1] == steps[1][1] != steps[2][1]
    size = menu.buttons[2].args[0]
    assert size["marker.colorscale"] == ["Viridis"] and size["marker.colorbar.ticktext"] == [None]
    assert size["marker.cmin"] == [0.0] and size["marker.cmax"] == [1.0]
    np.testing.assert_allclose(size["marker.color"][0], np.linspace(0, 1, 12), atol=1e-4)  # rounded for the page
    label = menu.buttons[0].args[0]
    assert label["marker.colorbar.ticktext"] == [["cat", "dog"]]
    np.testing.assert_array_equal(np.asarray(fig.data[0].marker.color), np.arange(12) % 3)  # starts on color


def test_layer_explorer_hover_shows_id_label_and_formatted_factors():
    layouts = make_layouts()
    fig = plots.layer_explorer(layouts, probe={"factor_specs": SPECS})
    custom = np.asarray(fig.data[0].customdata)
    assert list(custom[:, 0]) == list(range(100, 112))  # the probe id, for a widget's click handler
    row = custom[4]  # point 4: label 4 % 2 = 0 (cat), color 4 % 3 = 1 (green), size 4 / 11, count code 0 ("1")
    assert list(row[1:]) == ["cat", "green", f"{4 / 11:.2f}", "1"]
    template = fig.data[0].hovertemplate
    for j, name in enumerate(["label", "color", "size", "count"]):
        assert f"{name}: %{{customdata[{j + 1}]}}" in template


def test_layer_explorer_without_specs_guesses_categorical_factors():
    fig = plots.layer_explorer(make_layouts(), colour_by="count")
    buttons = {b.label: b.args[0] for b in fig.layout.updatemenus[0].buttons}
    assert buttons["count"]["marker.colorbar.ticktext"] == [["0", "1"]]  # small whole numbers: categories
    assert buttons["size"]["marker.colorbar.ticktext"] == [None]  # fractions: continuous


def test_layer_explorer_takes_labels_and_factors_from_the_probe_when_layouts_lack_them():
    layouts = make_layouts(4)
    layouts = Layouts(layouts.coords, ids=np.array([3, 1, 0, 2]))
    probe = {"labels": np.array([0, 1, 0, 1]), "classes": ["a", "b"], "factor_specs": SPECS,
             "factors": np.array([[0, 0.25, 0], [1, 0.5, 1], [2, 0.75, 0], [1, 1.0, 1]])}
    fig = plots.layer_explorer(layouts, probe=probe)
    custom = np.asarray(fig.data[0].customdata)
    assert list(custom[0]) == [3, "b", "green", "1.00", "2"]  # probe row 3, not layout row 3


def test_layer_explorer_max_points_keeps_the_same_points_everywhere():
    layouts = make_layouts()
    fig = plots.layer_explorer(layouts, max_points=5)
    ids = np.asarray(fig.data[0].customdata)[:, 0].astype(int)
    rows = ids - 100
    assert len(ids) == 5 and list(rows) == sorted(rows)
    for step, layer in zip(fig.layout.sliders[0].steps, LAYERS):
        np.testing.assert_allclose(step.args[0]["x"][0], layouts.coords[(2, layer)][rows, 0], atol=1e-3)
    for button in fig.layout.updatemenus[0].buttons:
        assert len(button.args[0]["marker.color"][0]) == 5


def test_epoch_explorer_slides_over_epochs_at_one_layer():
    layouts = make_layouts()
    fig = plots.epoch_explorer(layouts, layer=1)
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["0", "2"]
    for step, epoch in zip(steps, EPOCHS):
        np.testing.assert_allclose(step.args[0]["y"][0], layouts.coords[(epoch, 1)][:, 1], atol=1e-3)


def test_explorer_errors_name_the_bad_value_and_the_choices():
    layouts = make_layouts()
    with pytest.raises(ConfigError, match=r"colour_by='shape'.*'label', 'color', 'size', 'count'"):
        plots.layer_explorer(layouts, colour_by="shape")
    with pytest.raises(ConfigError, match=r"epoch=5.*0, 2"):
        plots.layer_explorer(layouts, epoch=5)
    with pytest.raises(ConfigError, match="max_points"):
        plots.layer_explorer(layouts, max_points=0)
    with pytest.raises(FigureDataError, match="empty"):
        plots.layer_explorer(Layouts({}, ids=np.arange(0)))
    with pytest.raises(FigureDataError, match="neither labels nor factors"):
        plots.layer_explorer(Layouts(layouts.coords, ids=layouts.ids))


def test_explorer_html_holds_every_layout_offline():
    layouts = make_layouts()
    data, layout = figure_in_html(plots.layer_explorer(layouts, probe={"factor_specs": SPECS}))
    for step, layer in zip(layout["sliders"][0]["steps"], LAYERS):
        np.testing.assert_allclose(step["args"][0]["x"][0], layouts.coords[(2, layer)][:, 0], atol=1e-3)
    assert [b["label"] for b in layout["updatemenus"][0]["buttons"]] == ["label", "color", "size", "count"]
    assert [row[0] for row in data[0]["customdata"]] == list(range(100, 112))


# ---- per-layer diagnostics ------------------------------------------------------------------------


def test_collapse_heatmaps_z_is_the_layer_by_epoch_table(runs):
    metrics = ["rankme", "std_l2", "uniformity"]
    for source in (runs["run"], runs["run"].diagnostics):
        fig = plots.collapse_heatmaps(source, metrics=metrics)
        assert len(fig.data) == 3
        for trace, metric in zip(fig.data, metrics):
            expected = [[value(e, l, "mean", metric) for e in EPOCHS] for l in LAYERS]
            np.testing.assert_array_equal(np.asarray(trace.z), expected)
            assert list(trace.x) == ["0", "2"] and list(trace.y) == ["0", "1", "2"]
    # brighter is healthier: uniformity (lower is better) runs the colour scale the other way
    assert [t.reversescale for t in fig.data] == [False, False, True]
    cls = plots.collapse_heatmaps(runs["run"], metrics=["rankme"], pool="cls")
    assert list(cls.data[0].y) == ["1", "2"]  # no CLS token at the patch embedding
    np.testing.assert_array_equal(np.asarray(cls.data[0].z)[0], [value(e, 1, "cls", "rankme") for e in EPOCHS])


def test_collapse_heatmaps_reads_token_metrics_from_the_tokens_rows(runs):
    fig = plots.collapse_heatmaps(runs["run"], metrics=["token_cosine"])
    np.testing.assert_allclose(np.asarray(fig.data[0].z), [[0.1 * l + e for e in EPOCHS] for l in LAYERS])


def test_missing_diagnostics_give_errors_that_say_why(runs):
    with pytest.raises(FigureDataError, match="run off has no diagnostics.csv: diagnostics.enabled was false"):
        plots.collapse_heatmaps(runs["off"])
    with pytest.raises(FigureDataError, match="no metric 'lidar'"):
        plots.collapse_heatmaps(runs["run"], metrics=["lidar"])
    with pytest.raises(ConfigError, match=r"pool='register' is invalid: one of 'cls', 'mean'"):
        plots.cka(runs["run"], pool="register")
    with pytest.raises(ConfigError, match=r"epoch=1 is invalid: one of 0, 2"):
        plots.decodability(runs["run"], epoch=1)
    with pytest.raises(FigureDataError, match="saved embeddings.*diagnostics.enabled was false"):
        plots.spectra(runs["off"])
    both = wb.compare_runs([runs["run"].path, runs["seed1"].path])
    with pytest.raises(FigureDataError, match="holds 2 runs"):
        plots.collapse_heatmaps(both)
    one = both[both["run"] == "lejepa-s0"]
    title = plots.collapse_heatmaps(one).layout.title.text
    assert title.startswith("Collapse over training, layer by layer: lejepa-s0")


def test_spectra_one_line_per_layer_with_the_saved_eigenvalues(runs):
    fig = plots.spectra(runs["run"])  # default: the last epoch with embeddings
    assert [t.name for t in fig.data] == ["layer 0", "layer 1", "layer 2"]
    assert fig.layout.yaxis.type == "log"
    assert len({t.line.color for t in fig.data}) == 3
    for trace, layer in zip(fig.data, LAYERS):
        saved = spectrum(2, layer).astype(np.float64)
        np.testing.assert_allclose(trace.customdata, saved)  # the true values, for the hover
        np.testing.assert_allclose(trace.y, np.maximum(saved, 1e-10))  # an exact zero sits on the floor
        assert list(trace.x) == [1, 2, 3, 4, 5]
    relative = plots.spectra(runs["run"], epoch=0, pool="cls", relative=True)
    np.testing.assert_allclose(relative.data[0].customdata, spectrum(0, 1) / spectrum(0, 1).sum(), rtol=1e-6)


def test_decodability_traces_hold_each_score_per_layer(runs):
    fig = plots.decodability(runs["run"])  # specs come from the run's saved probe set
    names = [t.name for t in fig.data]
    assert names == ["label, linear probe", "label, kNN", "color", "size", "count"]
    for trace, metric in zip(fig.data, ["linear_acc", "knn_acc", "factor/color", "factor/size", "factor/count"]):
        assert list(trace.x) == LAYERS
        np.testing.assert_allclose(trace.y, [value(2, l, "mean", metric) for l in LAYERS])
    assert [t.legendgroup for t in fig.data] == ["label", "label", "low", "mid", "high"]
    assert "R²" in fig.data[3].hovertemplate and "accuracy" in fig.data[2].hovertemplate
    early = plots.decodability(runs["run"].diagnostics, epoch=0, pool="cls")
    np.testing.assert_allclose(early.data[2].y, [value(0, l, "cls", "factor/color") for l in (1, 2)])
    assert early.data[2].legendgroup is None  # a bare table without specs: no level colouring


def test_cka_matrix_is_layer_by_layer(runs):
    fig = plots.cka(runs["run"], epoch=0)
    z = np.asarray(fig.data[0].z)
    np.testing.assert_array_equal(z, [[value(0, a, "mean", f"cka/{b}") for b in LAYERS] for a in LAYERS])
    assert list(fig.data[0].x) == ["0", "1", "2"] and fig.data[0].zmin == 0 and fig.data[0].zmax == 1


# ---- curves over training and across runs ----------------------------------------------------------


def test_loss_curves_one_panel_per_objective_with_val_markers_and_schedules(runs):
    fig = plots.loss_curves(runs["run"], smooth=2)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["total (weighted sum)", "supervised", "recon", "schedules"]
    traces = {t.name: t for t in fig.data}
    np.testing.assert_allclose(traces["loss"].y, [4.0, 3.5, 2.5, 1.5])  # rolling mean of 2 logged points
    np.testing.assert_allclose(traces["supervised/ce"].y, [2.0, 1.5, 1.0, 0.5])
    assert "recon/weight" not in [t.name for t in fig.data if t.xaxis == "x3"]
    np.testing.assert_allclose(traces["recon/weight"].y, [1.0, 0.7, 0.4, 0.1])  # schedules are never smoothed
    assert traces["val/recon/mse"].mode == "markers" and list(traces["val/recon/mse"].x) == [3, 7]
    np.testing.assert_allclose(traces["val/recon/mse"].y, [2.5, 3.5])
    assert traces["val/recon/mse"].marker.color == traces["recon/mse"].line.color
    assert "monitor/rankme" not in traces and "lr" not in traces
    data, _ = figure_in_html(fig)
    np.testing.assert_allclose([d for d in data if d["name"] == "val/loss"][0]["y"], [2.0, 1.0])


def test_loss_curves_errors(runs, tmp_path):
    with pytest.raises(ConfigError, match="smooth=0"):
        plots.loss_curves(runs["run"], smooth=0)
    empty = tmp_path / "empty"
    empty.mkdir()
    write_config(empty, RunConfig(name="empty"))
    with pytest.raises(FigureDataError, match="run empty has no metrics.csv yet"):
        plots.loss_curves(empty)


def test_loss_curves_of_a_run_that_logged_no_training_step_say_why(tmp_path):
    short = tmp_path / "short"
    short.mkdir()
    write_config(short, RunConfig(name="short"))
    pd.DataFrame([{"epoch": 0, "step": 3, "val/loss": 2.5}]).to_csv(short / "metrics.csv", index=False)
    (short / "summary.json").write_text(json.dumps({"status": "completed", "steps": 4}))
    fig = plots.loss_curves(short)
    (note,) = fig.layout.annotations
    assert "made 4 optimisation steps, fewer than trainer.log_every_n_steps = 10" in note.text
    (val,) = fig.data
    assert val.name == "val/loss" and list(val.x) == [3] and list(val.y) == [2.5]


def test_group_by_seed_joins_runs_equal_but_for_the_seed(runs):
    groups = plots.group_by_seed([runs["run"], runs["other"], runs["seed1"]])
    assert [(label, [r.name for r in members]) for label, members in groups] == [
        ("lejepa (2 seeds)", ["lejepa-s0", "lejepa-s1"]), ("supervised-s0", ["supervised-s0"])]


def test_compare_runs_draws_seed_groups_as_mean_and_std_bands(runs):
    fig = plots.compare_runs([runs["run"], runs["seed1"], runs["other"].path], "val/loss")
    lines = {t.name: t for t in fig.data if t.showlegend is not False}
    assert set(lines) == {"lejepa (2 seeds)", "supervised-s0"}
    mean = lines["lejepa (2 seeds)"]
    assert list(mean.x) == [3, 7]
    np.testing.assert_allclose(mean.y, [3.0, 1.5])  # (2 + 4) / 2, (1 + 2) / 2
    np.testing.assert_allclose(mean.customdata, [np.std([2, 4], ddof=1), np.std([1, 2], ddof=1)])
    band = [t for t in fig.data if t.fill == "toself"][0]
    np.testing.assert_allclose(band.y, [3 + 2 ** 0.5, 1.5 + 0.5 ** 0.5, 1.5 - 0.5 ** 0.5, 3 - 2 ** 0.5])
    np.testing.assert_allclose(lines["supervised-s0"].y, [3.0, 3.0])
    apart = plots.compare_runs([runs["run"], runs["seed1"]], "val/loss", group_seeds=False)
    assert [t.name for t in apart.data] == ["lejepa-s0", "lejepa-s1"]
    with pytest.raises(FigureDataError, match=r"no run logged 'val/acc'; run lejepa-s0 logged: .*train/loss"):
        plots.compare_runs([runs["run"]], "val/acc")


def test_metric_by_layer_compares_runs_layer_by_layer(runs):
    fig = plots.metric_by_layer([runs["run"], runs["seed1"], runs["other"], runs["off"]], "linear_acc")
    lines = {t.name: t for t in fig.data if t.showlegend is not False}
    mean = lines["lejepa (2 seeds)"]
    np.testing.assert_allclose(mean.y, [value(2, l, "mean", "linear_acc") + 1.0 for l in LAYERS])
    np.testing.assert_allclose(mean.customdata, [2 ** 0.5] * 3)  # values v and v + 2
    np.testing.assert_allclose(lines["supervised-s0"].y, [value(2, l, "mean", "linear_acc") for l in LAYERS])
    assert "left out (no linear_acc): off" in fig.layout.title.text
    early = plots.metric_by_layer([runs["other"]], "factor/size", epoch=0, pool="cls")
    np.testing.assert_allclose(early.data[0].y, [value(0, l, "cls", "factor/size") for l in (1, 2)])
    with pytest.raises(FigureDataError, match="diagnostics.enabled was false"):
        plots.metric_by_layer([runs["off"]])


def test_every_figure_survives_html_export(runs):
    for fig in (plots.collapse_heatmaps(runs["run"]), plots.cka(runs["run"]), plots.spectra(runs["run"]),
                plots.decodability(runs["run"])):
        data, _ = figure_in_html(fig)
        assert len(data) == len(fig.data)
    data, _ = figure_in_html(plots.collapse_heatmaps(runs["run"], metrics=["rankme"]))
    expected = [[value(e, l, "mean", "rankme") for e in EPOCHS] for l in LAYERS]
    np.testing.assert_array_equal(np.asarray(data[0]["z"]), expected)


def _chromium() -> str | None:
    """Debian's Chromium, when it and Playwright are both installed (the browser test needs both)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="needs Playwright and a Chromium executable")
def test_explorer_slider_and_menu_work_in_a_browser_without_a_kernel(tmp_path):
    from playwright.sync_api import sync_playwright

    layouts = make_layouts()
    page_path = tmp_path / "explorer.html"
    plots.layer_explorer(layouts, probe={"factor_specs": SPECS}).write_html(page_path, include_plotlyjs=True)
    state = """() => { const t = document.querySelector('.js-plotly-plot')._fullData[0];
                       return {x: Array.from(t.x), color: Array.from(t.marker.color),
                               title: t.marker.colorbar.title.text, ticks: t.marker.colorbar.ticktext || null}; }"""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.as_uri())
            page.wait_for_selector(".js-plotly-plot g.slider-container")
            np.testing.assert_allclose(page.evaluate(state)["x"], layouts.coords[(2, 2)][:, 0], atol=1e-3)
            rail = page.locator("g.slider-container rect.slider-rail-rect").bounding_box()
            page.mouse.click(rail["x"] + 2, rail["y"] + rail["height"] / 2)  # drag to the first step: layer 0
            # The slider's state changes before plotly.js restyles the trace: wait for the new points.
            page.wait_for_function(
                "x0 => { const p = document.querySelector('.js-plotly-plot');"
                " return p.layout.sliders[0].active === 0 && Math.abs(p._fullData[0].x[0] - x0) < 1e-3; }",
                arg=float(layouts.coords[(2, 0)][0, 0]))
            np.testing.assert_allclose(page.evaluate(state)["x"], layouts.coords[(2, 0)][:, 0], atol=1e-3)
            header = page.locator("g.updatemenu-header").bounding_box()
            page.mouse.click(header["x"] + header["width"] / 2, header["y"] + header["height"] / 2)
            page.locator(".updatemenu-dropdown-button-group text", has_text="color").first.click()
            page.wait_for_function("() => document.querySelector('.js-plotly-plot')"
                                   "._fullData[0].marker.colorbar.title.text === 'color'")
            after = page.evaluate(state)
            assert after["ticks"] == ["red", "green", "blue"] and after["color"] == list(np.arange(12) % 3)
            np.testing.assert_allclose(after["x"], layouts.coords[(2, 0)][:, 0], atol=1e-3)  # still layer 0
            assert not errors, errors
        finally:
            browser.close()
