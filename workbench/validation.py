"""Checks of a :class:`RunConfig` that need more than types: ranges, choices, and combinations.

Every check raises :class:`ConfigError` naming the dotted field, the value and what is allowed,
before anything is loaded or written.
"""

from __future__ import annotations

import math
import re

from .config import VIEW_RECIPES, DiagnosticsConfig, RunConfig
from .errors import ConfigError, check_one_of

PRECISIONS = ("auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")
# trainer.loggers: each name and the package it needs (None: the workbench's own dependencies)
LOGGERS = {"csv": None, "tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def _check(ok: bool, field: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(field, value, allowed)


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate_config(config: RunConfig) -> None:
    from .data.registry import image_shape

    _check(config.name == "" or bool(RUN_NAME.match(config.name)), "name", config.name,
           "letters, digits and _ . = + - (no slashes or spaces), or empty for a generated name")
    _check(config.seed >= 0, "seed", config.seed, "an integer >= 0")

    d = config.data
    channels, side = image_shape(d)  # checks data.name and image_folder's image_size
    _check(d.image_size is None or d.image_size >= 4, "data.image_size", d.image_size, "null or an integer >= 4")
    _check(d.batch_size >= 1, "data.batch_size", d.batch_size, "an integer >= 1")
    _check(0.0 < d.val_fraction < 1.0, "data.val_fraction", d.val_fraction, "a fraction in (0, 1)")
    _check(0.0 < d.test_fraction < 1.0, "data.test_fraction", d.test_fraction, "a fraction in (0, 1)")
    _check(d.probe_size >= 1, "data.probe_size", d.probe_size, "an integer >= 1")
    _check(d.seed >= 0, "data.seed", d.seed, "an integer >= 0")
    if d.name == "shapes":
        from .data.shapes import SHAPES_FACTORS

        labels = [f.name for f in SHAPES_FACTORS if f.kind == "categorical"]
        _check(d.label in labels, "data.label", d.label, f"a categorical shapes factor: {', '.join(labels)}")
        s = d.shapes
        _check(s.num_images >= 10, "data.shapes.num_images", s.num_images, "an integer >= 10")
        _check(s.image_size >= 16, "data.shapes.image_size", s.image_size, "an integer >= 16")
        _check(1 <= s.max_objects <= 4, "data.shapes.max_objects", s.max_objects, "an integer in 1..4 (one object per quadrant)")
        _check(0.0 <= s.noise_max < 0.5, "data.shapes.noise_max", s.noise_max, "a number in [0, 0.5)")

    m = config.model
    _check(m.patch_size >= 1, "model.patch_size", m.patch_size, "an integer >= 1")
    _check(side % m.patch_size == 0, "model.patch_size", m.patch_size,
           f"a divisor of the image size {side} ({', '.join(str(p) for p in range(1, side + 1) if side % p == 0)})")
    _check(m.heads >= 1, "model.heads", m.heads, "an integer >= 1")
    _check(m.width >= 1 and m.width % m.heads == 0, "model.width", m.width,
           f"a positive multiple of model.heads={m.heads}")
    _check(m.depth >= 1, "model.depth", m.depth, "an integer >= 1")
    _check(_number(m.mlp_ratio) and m.mlp_ratio > 0, "model.mlp_ratio", m.mlp_ratio, "a number > 0")
    _check(m.pool in ("cls", "mean"), "model.pool", m.pool, "'cls' or 'mean'")
    _check(m.registers >= 0, "model.registers", m.registers, "an integer >= 0")
    _check(0.0 <= m.drop_path < 1.0, "model.drop_path", m.drop_path, "a number in [0, 1)")
    if isinstance(m.gradient_isolation, list):
        bad = [i for i in m.gradient_isolation if not 0 <= i < m.depth]
        _check(not bad, "model.gradient_isolation", m.gradient_isolation,
               f"true, false, or layer indices in 0..{m.depth - 1} (detach after that layer)")

    _validate_objectives(config)
    _validate_diagnostics(config.diagnostics)

    o = config.optim
    _check(_number(o.lr) and o.lr > 0, "optim.lr", o.lr, "a number > 0")
    _check(_number(o.weight_decay) and o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "a number >= 0")
    _check(len(o.betas) == 2 and all(0.0 <= b < 1.0 for b in o.betas), "optim.betas", o.betas,
           "two numbers in [0, 1), e.g. [0.9, 0.999]")
    _check(0.0 <= o.warmup_fraction < 1.0, "optim.warmup_fraction", o.warmup_fraction, "a fraction in [0, 1)")
    _check(0.0 <= o.min_lr_ratio <= 1.0, "optim.min_lr_ratio", o.min_lr_ratio, "a number in [0, 1]")
    _check(o.grad_clip is None or (_number(o.grad_clip) and o.grad_clip > 0), "optim.grad_clip", o.grad_clip,
           "null (no clipping) or a number > 0")

    t = config.trainer
    _check(t.max_epochs >= 1 or t.max_steps >= 1, "trainer.max_epochs", t.max_epochs,
           "an integer >= 1 (or set trainer.max_steps >= 1)")
    _check(t.max_steps == -1 or t.max_steps >= 1, "trainer.max_steps", t.max_steps, "-1 (no limit) or an integer >= 1")
    _check(t.limit_train_batches > 0, "trainer.limit_train_batches", t.limit_train_batches,
           "a fraction in (0, 1] or a number of batches >= 1")
    check_one_of("trainer.accelerator", t.accelerator, ACCELERATORS)
    _check(t.devices == "auto" or (isinstance(t.devices, int) and t.devices >= 1), "trainer.devices", t.devices,
           "'auto' or an integer >= 1")
    _check(t.num_nodes >= 1, "trainer.num_nodes", t.num_nodes, "an integer >= 1")
    check_one_of("trainer.precision", t.precision, PRECISIONS)
    _check(t.log_every_n_steps >= 1, "trainer.log_every_n_steps", t.log_every_n_steps, "an integer >= 1")
    _check(t.check_val_every_n_epoch >= 1, "trainer.check_val_every_n_epoch", t.check_val_every_n_epoch,
           "an integer >= 1")
    check_loggers(t.loggers)


def check_loggers(names: list[str]) -> None:
    """``trainer.loggers``: distinct known names, each with its package importable (not imported here)."""
    import importlib.util

    _check(all(n in LOGGERS for n in names) and len(set(names)) == len(names), "trainer.loggers", names,
           f"a list of distinct names from {', '.join(LOGGERS)} (csv always runs, listed or not)")
    for name in names:
        _check(LOGGERS[name] is None or importlib.util.find_spec(LOGGERS[name]) is not None, "trainer.loggers", names,
               missing_tracker(name))


def missing_tracker(name: str) -> str:
    """What to do when the package of the ``name`` logger is missing."""
    return (f"the {name} logger needs the {LOGGERS[name]} package: pip install {LOGGERS[name]} "
            f"(or pip install 'workbench[trackers]'), or remove {name} from trainer.loggers")


def _validate_objectives(config: RunConfig) -> None:
    from .data.registry import image_shape
    from .objectives import BuildContext, objective_class, resolve_layers
    from .schedules import check_range

    active = config.active_objectives()
    _check(bool(active), "objectives", list(config.objectives),
           "at least one enabled objective, e.g. --set objectives.supervised.weight=1")
    for name, obj in config.objectives.items():
        prefix = f"objectives.{name}"
        _check(bool(RUN_NAME.match(name)) and "/" not in name, prefix, name, "a name of letters, digits, _ . -")
        cls = objective_class(name, obj)
        if isinstance(obj.weight, dict):
            check_range(obj.weight, f"{prefix}.weight", lambda w: w >= 0, "a schedule between finite numbers >= 0")
        else:
            _check(_number(obj.weight) and obj.weight >= 0, f"{prefix}.weight", obj.weight, "a finite number >= 0")
        resolve_layers(obj.layers, config.model.depth, f"{prefix}.layers")
        cls.check_params(name, obj.params)
    check_range(config.teacher.momentum, "teacher.momentum", lambda m: 0.0 <= m <= 1.0,
                "an EMA momentum in [0, 1] (1 freezes the teacher), or a schedule between such values")
    v = config.views
    _check(v.global_crops >= 2, "views.global_crops", v.global_crops, "an integer >= 2 (objectives compare two views)")
    _check(v.local_crops >= 0, "views.local_crops", v.local_crops, "an integer >= 0")
    for key in ("global_scale", "local_scale"):
        lo_hi = getattr(v, key)
        _check(len(lo_hi) == 2 and 0 < lo_hi[0] <= lo_hi[1] <= 1, f"views.{key}", lo_hi, "[low, high] with 0 < low <= high <= 1")
    ratio = "aspect ratios (width / height), e.g. [0.75, 1.333]"
    for key, what in (("global_ratio", ratio), ("local_ratio", ratio),
                      ("blur_sigma", "sigmas in pixels, e.g. [0.1, 2.0]")):
        lo_hi = getattr(v, key)
        _check(len(lo_hi) == 2 and all(map(_number, lo_hi)) and 0 < lo_hi[0] <= lo_hi[1], f"views.{key}", lo_hi,
               f"[low, high] with 0 < low <= high: {what}")
    _check(v.recipe in VIEW_RECIPES, "views.recipe", v.recipe,
           "'symmetric' (every crop the same augmentations) or 'dino' (DINO's per-crop blur and solarize)")
    for key in ("flip", "jitter", "grayscale", "blur", "solarize"):
        _check(0.0 <= getattr(v, key) <= 1.0, f"views.{key}", getattr(v, key), "a probability in [0, 1]")
    for key in ("brightness", "contrast", "saturation"):
        _check(_number(getattr(v, key)) and getattr(v, key) >= 0, f"views.{key}", getattr(v, key),
               "a jitter strength >= 0 (factors uniform in [max(0, 1 - s), 1 + s]; 0 turns it off)")
    _check(_number(v.hue) and 0 <= v.hue <= 0.5, "views.hue", v.hue,
           "a hue shift in [0, 0.5] turns (shifts uniform in [-hue, hue]; 0 turns it off)")
    # Build every objective once on a stand-in context: what only construction can check (mask
    # sizes against the patch grid, parameter choices, schedules) fails here, before any write.
    channels, side = image_shape(config.data)
    m = config.model
    if side % m.patch_size == 0 and m.width % m.heads == 0:
        context = BuildContext(width=m.width, depth=m.depth, patch_size=m.patch_size, grid=side // m.patch_size,
                               channels=channels, image_size=side, num_prefix=1 + m.registers, num_classes=2,
                               pool=m.pool)
        for name, obj in config.active_objectives().items():
            objective_class(name, obj)(name, obj, context)


def _validate_diagnostics(d: DiagnosticsConfig) -> None:
    def need(ok: bool, name: str, allowed: str) -> None:
        if not ok:
            raise ConfigError(f"diagnostics.{name}", getattr(d, name), allowed)

    def integer(x: object) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    need(integer(d.every_n_epochs) and d.every_n_epochs >= 0, "every_n_epochs",
         "an integer >= 0 (0: only before training and after the last epoch)")
    need(isinstance(d.pools, list) and len(d.pools) > 0 and set(d.pools) <= {"cls", "mean"}
         and len(set(d.pools)) == len(d.pools), "pools", "a non-empty list of 'cls' and/or 'mean'")
    need(integer(d.knn_k) and d.knn_k >= 1, "knn_k", "an integer >= 1")
    need(integer(d.probe_steps) and d.probe_steps >= 1, "probe_steps", "an integer >= 1")
    need(integer(d.token_images) and d.token_images >= 0, "token_images", "an integer >= 0")
    need(integer(d.monitor_every_n_steps) and d.monitor_every_n_steps >= 0, "monitor_every_n_steps",
         "an integer >= 0 (0: off)")
    need(isinstance(d.coherence, list) and all(
        isinstance(p, str) and p.count(":") == 1 and all(p.split(":")) for p in d.coherence),
         "coherence", "a list of 'target:context' factor pairs, e.g. ['shape:color', 'shape:region']")
    need(integer(d.max_samples) and d.max_samples >= 10, "max_samples",
         "an integer >= 10 (probe points seen by kNN, uniformity and the augmented views; "
         "5000 keeps a depth-12 pass on 50,000 probe images under the documented bound)")
