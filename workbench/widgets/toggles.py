"""Objective toggles: switch objectives on and off, pick their layers and weights, and train.

One row per registered objective (:data:`workbench.objectives.registry.OBJECTIVES`): a checkbox,
a target-layer selector (``last``, ``all`` = 1..depth, or a list such as ``1, 3``) and a weight
(a slider for quick moves and a number box for exact or out-of-range values). Every change rebuilds
the config through the same path as ``wb.make_config``, so the preview shows exactly what
``wb.fit`` will get -- or the validation error, naming the field, the value and what is allowed.

    toggles = widgets.objective_toggles("supervised", overrides=["trainer.max_epochs=2"])
    toggles                 # the panel; tick "mae", press Train and watch the curves
    toggles.config          # the RunConfig it builds (None while invalid)
    toggles.run             # the Run of the last training
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Sequence

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go

from ..config import RunConfig, flat_fields
from ..errors import WorkbenchError
from ..objectives.base import resolve_layers
from ..objectives.registry import OBJECTIVES
from ..presets import make_config
from ..schedules import build_schedule
from .live import LiveLossCurves
from .refill import refill
from .static import StaticPanel

LAYER_CHOICES = ("last", "all", "list")


def parse_layers(text: str, field: str) -> list[int]:
    """``"1, 3"`` -> ``[1, 3]``; anything else raises a :class:`ConfigError` naming ``field``."""
    from ..errors import ConfigError

    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        layers = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(field, text, "comma-separated layer indices, e.g. 1, 3") from None
    if not layers:
        raise ConfigError(field, text, "at least one layer index, e.g. 1, 3")
    return layers


def objective_map(config: RunConfig) -> go.Figure:
    """Which objective acts on which layer, with what weight: a heat-map of objectives x layers.

    Cell (objective, layer) holds the objective's weight at the first step where it targets that
    layer (blank elsewhere); layer 0 is the patch embedding, layer ``model.depth`` the last block.
    """
    depth = config.model.depth
    names = list(config.active_objectives())
    z = np.full((len(names), depth + 1), np.nan)
    text = [["" for _ in range(depth + 1)] for _ in names]
    for i, name in enumerate(names):
        obj = config.objectives[name]
        weight = build_schedule(obj.weight, f"objectives.{name}.weight").value(0, 1)
        scheduled = isinstance(obj.weight, dict)
        for layer in resolve_layers(obj.layers, depth, f"objectives.{name}.layers"):
            z[i, layer] = weight
            text[i][layer] = f"{weight:g}" + ("*" if scheduled else "")
    labels = [f"{n} ({config.objectives[n].kind})" if config.objectives[n].kind not in (None, n) else n for n in names]
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(depth + 1)), y=labels, text=text, texttemplate="%{text}", colorscale="Blues",
        zmin=0, hovertemplate="%{y}, layer %{x}: weight %{z}<extra></extra>", colorbar=dict(title="weight"),
    ))
    fig.update_xaxes(title_text="layer (0 = patch embedding)", dtick=1)
    fig.update_layout(title="Objectives by layer (* = scheduled weight, value at step 0)",
                      height=140 + 32 * max(1, len(names)), margin=dict(l=10, r=10, t=50, b=40))
    return fig


def _flow(value: Any) -> str:
    """A value as one line of YAML (``[1, 3]``, ``{}``, ``0.5``, ``null``)."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text[: -len("...")].strip() if text.endswith("...") else text


def config_diff(base: RunConfig, config: RunConfig) -> str:
    """What ``config`` changes in ``base``, one dotted field per line, values as YAML:
    ``- field: old`` for a value removed or replaced, ``+ field: new`` for a value added or set."""
    old, new = flat_fields(base.to_dict()), flat_fields(config.to_dict())
    lines = []
    for key in list(old) + [k for k in new if k not in old]:
        if key in old and (key not in new or new[key] != old[key]):
            lines.append(f"- {key}: {_flow(old[key])}")
        if key in new and (key not in old or new[key] != old[key]):
            lines.append(f"+ {key}: {_flow(new[key])}")
    return "\n".join(lines)


class ObjectiveToggles(W.VBox):
    """The toggles panel (an ``ipywidgets.VBox``); see the module docstring.

    Attributes a test or a notebook can drive: ``enabled[kind]`` (Checkbox), ``layers[kind]``
    (Dropdown), ``layer_list[kind]`` (Text), ``weights[kind]`` (FloatText, the value used),
    ``sliders[kind]`` (FloatSlider), ``train_button``; results: ``config``, ``error``, ``run``,
    ``curves`` (the :class:`LiveLossCurves` of the last training).
    """

    def __init__(self, base: RunConfig, cache_dir: str | Path | None = "data",
                 weight_range: tuple[float, float] = (0.0, 2.0)):
        self.base = base
        self.cache_dir = cache_dir
        self.config: RunConfig | None = None
        self.error = ""
        self.run = None
        self.curves: LiveLossCurves | None = None
        # kind -> the name of the base objective it controls (the preset's key, e.g. "deepsup")
        self.names = {kind: self._name_in_base(kind) for kind in OBJECTIVES}
        self.enabled: dict[str, W.Checkbox] = {}
        self.layers: dict[str, W.Dropdown] = {}
        self.layer_list: dict[str, W.Text] = {}
        self.weights: dict[str, W.FloatText] = {}
        self.sliders: dict[str, W.FloatSlider] = {}
        self._syncing = False
        rows = [self._row(kind, weight_range) for kind in OBJECTIVES]

        self.preview = W.HTML()
        self.message = W.HTML()
        self.map = go.FigureWidget()
        self.train_button = W.Button(description="Train", button_style="primary", icon="play")
        self.train_button.on_click(lambda _: self.train())
        self.output = W.Output(layout=W.Layout(max_height="200px", overflow="auto"))
        self.curve_box = W.VBox()
        header = W.HTML("<b>objective</b> &nbsp; target layers &nbsp; weight")
        super().__init__([header, *rows, self.message, self.preview, self.map,
                          W.HBox([self.train_button]), self.curve_box, self.output])
        self.refresh()

    # ---- building ------------------------------------------------------------------------------

    def _name_in_base(self, kind: str) -> str:
        for name, obj in self.base.objectives.items():
            if (obj.kind or name) == kind:
                return name
        return kind

    def _row(self, kind: str, weight_range: tuple[float, float]) -> W.HBox:
        name = self.names[kind]
        present = name in self.base.objectives and self.base.objectives[name].enabled
        obj = self.base.objectives.get(name)
        doc = (OBJECTIVES[kind].__doc__ or "").strip().split("\n")[0]
        check = W.Checkbox(value=present, description=kind if name == kind else f"{kind} ({name})",
                           indent=False, tooltip=doc, layout=W.Layout(width="190px"))
        spec = obj.layers if obj is not None else "last"
        choice = W.Dropdown(options=LAYER_CHOICES, value=spec if isinstance(spec, str) else "list",
                            layout=W.Layout(width="80px"))
        listed = W.Text(value=", ".join(map(str, spec)) if isinstance(spec, list) else "", placeholder="1, 3",
                        layout=W.Layout(width="90px"), disabled=isinstance(spec, str))
        weight = obj.weight if obj is not None else 1.0
        scheduled = isinstance(weight, dict)
        start = float(weight.get("start", 1.0)) if scheduled else float(weight)
        slider = W.FloatSlider(value=min(max(start, weight_range[0]), weight_range[1]), min=weight_range[0],
                               max=weight_range[1], step=0.05, readout=False, continuous_update=False,
                               disabled=scheduled, layout=W.Layout(width="160px"))
        box = W.FloatText(value=start, step=0.1, disabled=scheduled, layout=W.Layout(width="80px"),
                          tooltip="scheduled in the base config: kept as it is" if scheduled else "weight")
        self.enabled[kind], self.layers[kind], self.layer_list[kind] = check, choice, listed
        self.sliders[kind], self.weights[kind] = slider, box
        slider.observe(lambda ch, k=kind: self._slider_moved(k, ch["new"]), "value")
        box.observe(lambda ch, k=kind: self._box_changed(k, ch["new"]), "value")
        for w in (check, choice, listed):
            w.observe(lambda ch: self.refresh(), "value")
        choice.observe(lambda ch, t=listed: setattr(t, "disabled", ch["new"] != "list"), "value")
        return W.HBox([check, choice, listed, slider, box])

    def _slider_moved(self, kind: str, value: float) -> None:
        if not self._syncing:
            self._syncing = True
            self.weights[kind].value = value  # refreshes through the box's observer
            self._syncing = False

    def _box_changed(self, kind: str, value: float) -> None:
        if not self._syncing:
            self._syncing = True
            slider = self.sliders[kind]
            slider.value = min(max(value, slider.min), slider.max) if math.isfinite(value) else slider.min
            self._syncing = False
        self.refresh()

    def overrides(self) -> dict[str, Any]:
        """The dotted overrides the toggles apply to the base config."""
        out: dict[str, Any] = {}
        for kind, check in self.enabled.items():
            name = self.names[kind]
            if not check.value:
                if name in self.base.objectives and self.base.objectives[name].enabled:
                    out[f"objectives.{name}"] = None
                continue
            if name in self.base.objectives and not self.base.objectives[name].enabled:
                out[f"objectives.{name}.enabled"] = True  # switched off in the base config: on again
            field = f"objectives.{name}.layers"
            choice = self.layers[kind].value
            out[field] = parse_layers(self.layer_list[kind].value, field) if choice == "list" else choice
            if not self.weights[kind].disabled:  # a scheduled weight of the base config is kept as it is
                out[f"objectives.{name}.weight"] = float(self.weights[kind].value)
        return out

    def build(self) -> RunConfig:
        """The validated config, or a :class:`ConfigError` naming the field that is wrong."""
        return make_config(None, self.overrides(), base=self.base)

    def refresh(self) -> None:
        """Rebuild the config; show its diff from the base, or the error."""
        try:
            self.config, self.error = self.build(), ""
        except (WorkbenchError, ValueError) as exc:
            self.config, self.error = None, str(exc)
        if self.config is None:
            self.message.value = f"<span style='color:#b00020'><b>invalid:</b> {html.escape(self.error)}</span>"
            self.preview.value = ""
            self.train_button.disabled = True
            return
        self.message.value = ""
        diff = config_diff(self.base, self.config) or "(the base config, unchanged)"
        self.preview.value = f"<pre style='font-size:11px;max-height:220px;overflow:auto'>{html.escape(diff)}</pre>"
        self.train_button.disabled = False
        refill(self.map, objective_map(self.config))

    # ---- training ------------------------------------------------------------------------------

    def train(self, callbacks: Sequence[Any] = ()):
        """Train the current config with live curves; returns the :class:`~workbench.runs.Run`."""
        from ..training.fit import fit

        if self.config is None:
            raise ValueError(f"the toggles build no valid config: {self.error}")
        self.curves = LiveLossCurves(title=f"Training: {', '.join(self.config.active_objectives())}")
        self.curve_box.children = [self.curves.figure]
        self.train_button.disabled = True
        try:
            with self.output:
                self.run = fit(self.config, callbacks=[self.curves, *callbacks], cache_dir=self.cache_dir)
                print(f"run directory: {self.run.path}")
                headline = self.run.summary.get("headline", {})
                print("  ".join(f"{k}={v:.3f}" for k, v in sorted(headline.items()) if k.startswith("test/")))
        finally:
            self.train_button.disabled = self.config is None
        return self.run


def objective_toggles(
    base: str | RunConfig = "supervised",
    overrides: "Sequence[str] | dict[str, Any]" = (),
    interactive: bool = True,
    cache_dir: str | Path | None = "data",
    weight_range: tuple[float, float] = (0.0, 2.0),
) -> ObjectiveToggles | StaticPanel:
    """The objective toggles panel, starting from a preset name (or a config) plus ``overrides``.

    With ``interactive=False`` it returns the config it would build (as text) and the
    objectives-by-layer figure, for headless runs and HTML export.
    """
    items = overrides if isinstance(overrides, dict) else list(overrides)
    config = make_config(None, items, base=base) if isinstance(base, RunConfig) else make_config(base, items)
    if not interactive:
        import yaml

        text = yaml.safe_dump({"objectives": config.to_dict()["objectives"]}, sort_keys=False)
        return StaticPanel([objective_map(config)], text=text, title="Objectives of this config")
    return ObjectiveToggles(config, cache_dir=cache_dir, weight_range=weight_range)
