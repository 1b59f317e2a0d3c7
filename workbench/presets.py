"""Named recipes: a preset is a one-line description and the overrides it applies to the defaults.

Presets set *what is learned* (objectives and their settings); sizes (data, model, epochs) stay at
the defaults, which are chosen to train in minutes on two CPU cores, and are overridden separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import RunConfig
from .errors import check_one_of
from .validation import validate_config


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    overrides: dict[str, Any] = field(default_factory=dict)


def _objectives(**objectives: dict[str, Any]) -> dict[str, Any]:
    return {"objectives": objectives}


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("supervised", "Cross-entropy on the last layer's pooled token: the supervised baseline.",
               _objectives(supervised={"layers": "last"})),
        Preset("toy-collapse", "The toy (docs/concepts.md): two crops, one encoder, KL between their softmax outputs; it collapses.",
               _objectives(toy={"kind": "toy_kl"})),
        Preset("dino", "DINO: EMA teacher, centring and sharpening, multi-crop with per-crop augmentations, "
               "teacher-temperature warm-up.",
               {**_objectives(dino={}), "views.recipe": "dino"}),
        Preset("ijepa", "I-JEPA: predict the EMA teacher's target-block tokens from a context block.",
               _objectives(ijepa={})),
        # LeJEPA and VICReg use their official projector shape (objective defaults): three layers,
        # Linear-BatchNorm-ReLU, hidden 4 x width; a two-layer head without batch norm kept a short
        # run's embedding far from spread out (tests/test_collapse_phenomenon.py).
        Preset("lejepa", "LeJEPA: SIGReg towards an isotropic Gaussian plus view invariance; no teacher.",
               _objectives(lejepa={})),
        Preset("vicreg", "VICReg: invariance, variance and covariance terms on two views.",
               _objectives(vicreg={})),
        Preset("barlow", "Barlow Twins: cross-correlation of two views pushed to the identity.",
               _objectives(barlow={})),
        Preset("simclr", "SimCLR: NT-Xent contrast between two views of each image.",
               _objectives(simclr={})),
        Preset("mae", "MAE: encode 25% of the patches, reconstruct the hidden ones' normalised pixels.",
               _objectives(mae={})),
        Preset("stepwise-deepsup", "Deep supervision: a linear label head on every layer.",
               _objectives(deepsup={"kind": "supervised", "layers": "all"})),
        Preset("stepwise-pixel-ladder", "Pixel ladder: every layer reconstructs hidden patches, finer targets early.",
               _objectives(ladder={"kind": "pixel_ladder", "layers": "all"})),
        Preset("stepwise-latent-ladder", "Latent ladder: every layer predicts the EMA teacher's same layer at hidden patches.",
               _objectives(ladder={"kind": "latent_ladder", "layers": "all"})),
        Preset("local-greedy", "Greedy local learning: gradients stop between blocks; each layer has its own label head.",
               {**_objectives(deepsup={"kind": "supervised", "layers": "all"}), "model.gradient_isolation": True}),
        Preset("coherent", "The proposal of docs/concepts.md: coarse-to-fine pixel ladder + LeJEPA + full-image reconstruction.",
               _objectives(
                   ladder={"kind": "pixel_ladder", "layers": "all", "weight": 0.5,
                           "params": {"direction": "coarse_to_fine"}},
                   lejepa={"weight": 1.0},
                   recon={"weight": 0.5},
               )),
    ]
}


#: Views under which the joint-embedding recipes learn the object's shape on ``shapes`` (measured
#: in docs/design-notes.md, "Joint-embedding recipes on shapes"). No crops: on these small scenes a
#: random crop of scale 0.4-1 holds the whole primary object in about a fifth of the views, so two
#: crops share colour and texture more often than shape. Colour as a nuisance: jitter on every view
#: with hue shifts of up to half a turn (the six palette hues are a sixth of a turn apart, so the
#: default 0.1 never turns one into another), strong saturation and brightness jitter, and
#: grayscale half of the time. The notebooks that compare latent recipes on ``shapes`` apply them;
#: the config defaults stay DINO's and BYOL's, which the supervised and collapse notebooks use.
SHAPES_VIEWS: dict[str, Any] = {
    "views.global_scale": [1.0, 1.0], "views.local_crops": 0, "views.jitter": 1.0, "views.hue": 0.5,
    "views.saturation": 0.8, "views.brightness": 0.6, "views.grayscale": 0.5,
}


def make_config(
    preset: str | None = "supervised",
    overrides: "list[str] | dict[str, Any] | None" = None,
    base: RunConfig | None = None,
    validate: bool = True,
) -> RunConfig:
    """Defaults (or ``base``), then the preset, then the user's overrides; validated.

    >>> make_config("supervised", ["model.depth=4", "trainer.max_epochs=2"]).model.depth
    4
    """
    config = base.copy() if base is not None else RunConfig()
    if preset:
        check_one_of("preset", preset, PRESETS)
        config = config.with_overrides({**PRESETS[preset].overrides, "preset": preset})
    config = config.with_overrides(overrides)
    if validate:
        validate_config(config)
    return config
