"""The widgets, driven from Python as a person would drive them in JupyterLab (no browser here)."""

import io
import shutil

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.callbacks import Points

import workbench as wb
from workbench import widgets
from workbench.analysis.layouts import Layouts

SMALL = [
    "data.shapes.num_images=600", "data.batch_size=64", "data.probe_size=120", "model.patch_size=8",
    "model.width=16", "model.depth=2", "model.heads=2", "trainer.max_epochs=1", "trainer.log_every_n_steps=3",
    # the cheapest diagnostics that still record every metric the panels draw
    "diagnostics.token_images=32", "diagnostics.probe_steps=10", "diagnostics.coherence=[]",
]


def first_two_columns(run, pool="mean", **_):
    """A stand-in for UMAP (which needs tens of seconds to compile): each layout is simply the first
    two embedding dimensions, so a test knows exactly where every point must be."""
    coords, data = {}, None
    for epoch in run.embedding_epochs():
        data = run.embeddings(epoch)
        for key, value in data.items():
            name, _, which = key.partition("_")
            if name.startswith("l") and name[1:].isdigit() and which == pool:
                coords[(epoch, int(name[1:]))] = value[:, :2].astype(np.float32)
    probe = run.probe()
    return Layouts(coords=coords, ids=np.asarray(data["ids"]), labels=data["labels"], label_names=probe["classes"],
                   factors=data["factors"], factor_names=[f.name for f in probe["factor_specs"]], pool=pool)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small run, trained by pressing the toggles' Train button (so the button, the live curves
    and every panel below are tested on the same run)."""
    root = tmp_path_factory.mktemp("widgets")
    toggles = widgets.objective_toggles("supervised", overrides=SMALL + [f"runs_dir={root / 'runs'}"],
                                        cache_dir=root / "data")
    toggles.train_button.click()
    return toggles


# ---- live curves ---------------------------------------------------------------------------------


def test_curve_panel_sorts_logged_keys_into_losses_accuracies_and_the_rest():
    assert widgets.curve_panel("train/loss") == "loss"
    assert widgets.curve_panel("val/mae/mse") == "loss"
    assert widgets.curve_panel("train/supervised/acc_l2") == "accuracy"
    for key in ("train/lr", "train/monitor/rankme", "train/teacher/momentum", "test/loss", "epoch",
                "train/dino/rankme"):
        assert widgets.curve_panel(key) is None, key
    assert widgets.curve_panel("train/mae/mask_ratio", {"train/mae/mask_ratio"}) is None


def test_live_curves_hold_exactly_the_values_and_steps_of_metrics_csv(trained):
    run, curves = trained.run, trained.curves
    assert run.summary["status"] == "completed"
    assert trained.curve_box.children == (curves.figure,)
    for key in ("train/loss", "train/supervised/ce", "train/supervised/acc", "val/loss", "val/supervised/acc"):
        steps, values = curves.curve(key)
        logged = run.curve(key)
        assert steps == logged["step"].tolist(), key
        np.testing.assert_allclose(values, logged["value"].to_numpy(), rtol=1e-6, err_msg=key)
    names = {t.name for t in curves.figure.data}
    assert "train/lr" not in names and "train/monitor/rankme" not in names
    accuracy = next(t for t in curves.figure.data if t.name == "val/supervised/acc")
    assert accuracy.xaxis == "x2" and accuracy.mode == "lines+markers"
    # one drawing per logging event: every third step (7 steps: 2, 5) and one validation
    assert curves.curve("train/loss")[0] == [2, 5] and curves.updates == 2 + 1


def test_live_curves_draw_points_given_by_hand():
    curves = widgets.live_loss_curves(title="t")
    curves.add_points(10, {"train/loss": 2.0, "train/lr": 0.1, "epoch": 0.0}, epoch=0)
    curves.add_points(20, {"train/loss": 1.5, "train/x/acc": 0.25}, epoch=1)
    assert curves.curve("train/loss") == ([10, 20], [2.0, 1.5])
    assert curves.curve("train/x/acc") == ([20], [0.25]) and curves.curve("train/lr") == ([], [])
    assert curves.figure.layout.title.text == "t (step 20, epoch 1)"


# ---- objective toggles ---------------------------------------------------------------------------


def test_parse_layers_reads_lists_and_names_the_field_when_it_cannot():
    assert widgets.parse_layers("1, 3", "f") == [1, 3] and widgets.parse_layers("2 4;5", "f") == [2, 4, 5]
    with pytest.raises(wb.ConfigError, match=r"objectives\.mae\.layers='1, x' is invalid: comma-separated"):
        widgets.parse_layers("1, x", "objectives.mae.layers")
    with pytest.raises(wb.ConfigError, match="at least one layer"):
        widgets.parse_layers(" ", "f")


def test_config_diff_lists_each_changed_field_with_old_and_new_values():
    base = wb.make_config("supervised")
    new = wb.make_config(None, {"model.depth": 4, "objectives.supervised.layers": [1, 2]}, base=base)
    assert widgets.config_diff(base, new) == (
        "- model.depth: 6\n+ model.depth: 4\n"
        "- objectives.supervised.layers: last\n+ objectives.supervised.layers: [1, 2]"
    )
    assert widgets.config_diff(base, base) == ""


def test_objective_map_puts_each_weight_on_the_layers_its_objective_targets():
    scheduled = "objectives.recon.weight={schedule: linear, start: 0.25, end: 1}"
    config = wb.make_config("coherent", ["model.depth=3", scheduled])
    fig = widgets.objective_map(config)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert list(fig.data[0].y) == ["ladder (pixel_ladder)", "lejepa", "recon"]
    expected = np.array([[np.nan, 0.5, 0.5, 0.5], [np.nan, np.nan, np.nan, 1.0], [np.nan, np.nan, np.nan, 0.25]])
    np.testing.assert_array_equal(z, expected)
    assert fig.data[0].text[2][3] == "0.25*"  # scheduled: the value at step 0, starred


def test_toggles_build_the_config_of_the_boxes_ticked():
    toggles = widgets.objective_toggles("supervised", overrides=["model.depth=3"])
    assert toggles.enabled["supervised"].value and not toggles.enabled["mae"].value
    toggles.enabled["mae"].value = True
    toggles.sliders["mae"].value = 0.5  # the slider moves the number box, which the config reads
    toggles.layers["supervised"].value = "list"
    toggles.layer_list["supervised"].value = "1, 3"
    assert toggles.error == "" and toggles.weights["mae"].value == 0.5
    expected = wb.make_config("supervised", ["model.depth=3", "objectives.mae.weight=0.5",
                                             "objectives.supervised.layers=[1, 3]"])
    assert toggles.config.to_dict() == expected.to_dict()
    assert "+ objectives.mae.weight: 0.5" in toggles.preview.value
    assert "+ objectives.supervised.layers: [1, 3]" in toggles.preview.value
    assert [t.y for t in toggles.map.data][0] == ("supervised", "mae")
    toggles.enabled["supervised"].value = False
    assert list(toggles.config.objectives) == ["mae"]


def test_toggles_drive_a_presets_own_objective_names():
    toggles = widgets.objective_toggles("stepwise-deepsup", overrides=["model.depth=2"])
    assert toggles.enabled["supervised"].value and toggles.enabled["supervised"].description == "supervised (deepsup)"
    assert toggles.layers["supervised"].value == "all"
    toggles.weights["supervised"].value = 0.3
    assert list(toggles.config.objectives) == ["deepsup"] and toggles.config.objectives["deepsup"].weight == 0.3


def test_an_invalid_weight_or_layer_list_shows_the_error_and_blocks_training():
    toggles = widgets.objective_toggles("supervised", overrides=["model.depth=2"])
    toggles.weights["supervised"].value = -1.0  # typed into the number box: below the slider's range
    assert toggles.config is None and toggles.train_button.disabled
    assert "objectives.supervised.weight=-1.0 is invalid: a finite number &gt;= 0" in toggles.message.value
    assert toggles.sliders["supervised"].value == 0.0  # the slider shows the nearest value it can
    with pytest.raises(ValueError, match="no valid config"):
        toggles.train()
    toggles.weights["supervised"].value = 1.0
    assert toggles.config is not None and not toggles.train_button.disabled and toggles.message.value == ""
    toggles.layers["supervised"].value = "list"
    toggles.layer_list["supervised"].value = "1, 7"
    assert "objectives.supervised.layers=[1, 7] is invalid: layer indices in 0..2" in toggles.error
    toggles.layers["supervised"].value = "last"
    toggles.enabled["supervised"].value = False
    assert "at least one enabled objective" in toggles.error


# ---- layer explorer ------------------------------------------------------------------------------


@pytest.fixture()
def explorer(trained):
    return widgets.layer_explorer(trained.run, layouter=first_two_columns)


def test_explorer_starts_at_the_last_epoch_and_layer(trained, explorer):
    assert explorer.run_picker.value == str(trained.run.path)
    assert explorer.epoch.options == (0, 1) and explorer.epoch.value == 1
    assert (explorer.layer.min, explorer.layer.max, explorer.layer.value) == (0, 2, 2)
    last = trained.run.embeddings(1)["l2_mean"][:, :2]
    np.testing.assert_allclose(explorer.figure.data[0].x, last[:, 0], rtol=1e-6)
    np.testing.assert_allclose(explorer.figure.data[0].y, last[:, 1], rtol=1e-6)
    every = np.concatenate(list(explorer.layouts.coords.values()))  # axes fixed over all layouts
    for axis, column in ((explorer.figure.layout.xaxis, 0), (explorer.figure.layout.yaxis, 1)):
        lo, hi = axis.range
        assert lo < every[:, column].min() and every[:, column].max() < hi


def test_moving_the_layer_and_epoch_sliders_moves_the_points_to_that_layout(trained, explorer):
    explorer.layer.value = 1
    np.testing.assert_allclose(explorer.figure.data[0].x, trained.run.embeddings(1)["l1_mean"][:, 0], rtol=1e-6)
    explorer.epoch.value = 0
    np.testing.assert_allclose(explorer.figure.data[0].y, trained.run.embeddings(0)["l1_mean"][:, 1], rtol=1e-6)
    assert explorer.figure.layout.title.text.endswith("epoch 0, layer 1 (mean pool)")


def test_colour_by_a_factor_colours_each_point_by_its_value(trained, explorer):
    factors = trained.run.embeddings(1)["factors"]
    specs = trained.run.probe()["factor_specs"]
    j = [f.name for f in specs].index("shape")
    explorer.colour_by.value = "shape"
    marker = explorer.figure.data[0].marker
    np.testing.assert_array_equal(marker.color, factors[:, j])
    assert tuple(marker.colorbar.ticktext) == specs[j].values
    assert f"shape: {specs[j].format(factors[0, j])}" in explorer.figure.data[0].hovertext[0]
    explorer.colour_by.value = "size"  # continuous: a colour scale over its range
    size = factors[:, [f.name for f in specs].index("size")]
    assert explorer.figure.data[0].marker.cmin == pytest.approx(float(size.min()))


def test_clicking_a_point_shows_its_image_enlarged_and_its_factors(trained, explorer):
    from PIL import Image

    probe = trained.run.probe()
    trace = explorer.figure.data[0]
    trace._dispatch_on_click(Points(point_inds=[7], xs=[0.0], ys=[0.0], trace_name="probe", trace_index=0), None)
    pid = int(explorer.layouts.ids[7])
    assert explorer.selected == pid
    shown = np.asarray(Image.open(io.BytesIO(explorer.image.value)))
    image = probe["images"][pid]  # 3 x 32 x 32: enlarged 5x to 160 x 160
    assert shown.shape == (160, 160, 3)
    np.testing.assert_array_equal(shown[::5, ::5], image.transpose(1, 2, 0))
    for j, spec in enumerate(probe["factor_specs"]):
        assert f"<b>{spec.name}</b></td><td>{spec.format(probe['factors'][pid, j])}" in explorer.details.value
    assert f"<td>{probe['classes'][int(probe['labels'][pid])]}</td>" in explorer.details.value
    trace._dispatch_on_hover(Points(point_inds=[3], xs=[0.0], ys=[0.0], trace_name="probe", trace_index=0), None)
    assert explorer.selected == int(explorer.layouts.ids[3])


def test_the_run_picker_offers_every_run_with_embeddings_and_switches(trained, tmp_path):
    other = tmp_path / "runs" / "copy"
    shutil.copytree(trained.run.path, other)
    (tmp_path / "runs" / "not-a-run").mkdir()
    explorer = widgets.layer_explorer(tmp_path / "runs", layouter=first_two_columns)
    assert [name for name, _ in explorer.run_picker.options] == ["copy"]
    with pytest.raises(FileNotFoundError, match="no run directory with saved embeddings"):
        widgets.layer_explorer(tmp_path / "runs" / "not-a-run")
    explorer = widgets.layer_explorer(trained.run.path.parent, layouter=first_two_columns)
    explorer.layer.value = 0
    explorer.pool.value = "cls"  # layer 0 has no CLS token: the slider starts at 1
    assert explorer.layer.min == 1 and explorer.layouts.pool == "cls"
    np.testing.assert_allclose(explorer.figure.data[0].x, trained.run.embeddings(1)["l2_cls"][:, 0], rtol=1e-6)


def test_enlarge_repeats_pixels_and_grey_channels():
    image = np.array([[[0, 10], [20, 30]]], dtype=np.uint8)  # 1 x 2 x 2
    big = widgets.images.enlarge(image, side=6)
    assert big.shape == (6, 6, 3)
    assert (big[:3, :3] == 0).all() and (big[:3, 3:] == 10).all()
    assert (big[3:, :3] == 20).all() and (big[3:, 3:] == 30).all()


# ---- collapse dashboard --------------------------------------------------------------------------


def test_dashboard_redraws_the_heatmaps_for_the_metrics_picked(trained):
    dash = widgets.collapse_dashboard(trained.run)
    assert [t.name for t in dash.heatmaps.data] == ["rankme", "effective_rank", "std_l2", "uniformity"]
    dash.metrics.value = ("linear_acc",)
    (heatmap,) = dash.heatmaps.data
    table = trained.run.diagnostics
    rows = table[(table["metric"] == "linear_acc") & (table["pool"] == "mean")]
    expected = rows.pivot_table(index="layer", columns="epoch", values="value").sort_index()
    np.testing.assert_allclose(np.asarray(heatmap.z, dtype=float), expected.to_numpy())
    assert len(dash.spectra.data) == 3 and "epoch 1" in dash.spectra.layout.title.text
    dash.epoch.value = 0
    assert "epoch 0" in dash.decodability.layout.title.text and "epoch 0" in dash.spectra.layout.title.text
    dash.pool.value = "cls"
    assert "cls pool" in dash.decodability.layout.title.text


# ---- static panels -------------------------------------------------------------------------------


def test_interactive_false_returns_the_static_figures(trained):
    panels = [
        widgets.layer_explorer(trained.run, interactive=False, layouter=first_two_columns),
        widgets.collapse_dashboard(trained.run, interactive=False),
        widgets.objective_toggles("supervised", ["model.depth=2"], interactive=False),
    ]
    for panel in panels:
        assert isinstance(panel, widgets.StaticPanel) and panel
        assert all(type(f) is go.Figure for f in panel)  # plain figures: no kernel needed
    explorer, dashboard, toggles = panels
    assert [s.label for s in explorer[0].layout.sliders[0].steps] == ["0", "1", "2"]
    assert len(dashboard) == 3
    assert "objectives:\n  supervised:\n" in toggles.text


def test_a_static_panel_displays_its_text_and_every_figure(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    figures = [go.Figure(layout=dict(title="a")), go.Figure(layout=dict(title="b"))]
    widgets.StaticPanel(figures, text="x: 1", title="T")._ipython_display_()
    assert "T" in shown[0].data and "x: 1" in shown[1].data and shown[2:] == figures


def test_the_explorer_passes_max_points_and_layout_options_to_the_layouter(trained):
    """Both modes hand ``max_points`` (and every other layout option) to the layouts, so the sample
    cap bounds the UMAP work, not only the drawing."""
    received = []

    def spy(run, pool="mean", **kwargs):
        received.append(kwargs)
        return first_two_columns(run, pool)

    widgets.layer_explorer(trained.run, interactive=False, layouter=spy, max_points=123, n_epochs=7)
    widgets.layer_explorer(trained.run, layouter=spy, max_points=123, n_epochs=7)
    assert received and all(k == {"max_points": 123, "n_epochs": 7} for k in received)
