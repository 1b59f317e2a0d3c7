"""The run configuration: one dataclass tree, validated before anything runs.

A run is fully described by a :class:`RunConfig`. It round-trips through YAML (``config.yaml`` in
every run directory re-creates the run) and takes dotted overrides such as ``model.depth=8`` from
the command line or a notebook. Every invalid value raises :class:`~workbench.errors.ConfigError`
naming the dotted field, the value and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from .errors import ConfigError

# --------------------------------------------------------------------------------------------
# The tree
# --------------------------------------------------------------------------------------------


@dataclass
class ShapesConfig:
    """Parameters of the procedural ``shapes`` dataset (see :mod:`workbench.data.shapes`)."""

    num_images: int = 12000
    image_size: int = 32
    max_objects: int = 3
    noise_max: float = 0.12


@dataclass
class DataConfig:
    """Which images, how they are split, and how they are batched.

    ``seed`` fixes the generated data and the train / val / test / probe split; it is separate from
    the run's seed so that a seed sweep trains on the same split.
    """

    name: str = "shapes"
    root: Union[str, None] = None  # where real datasets live; None searches the usual places
    download: bool = False  # let torchvision download when online
    image_size: Union[int, None] = None  # resize to this side; None keeps the native size
    label: str = "shape"  # shapes only: which categorical factor is the class label
    batch_size: int = 256
    val_fraction: float = 0.1  # of the training split, held out for validation and probes
    test_fraction: float = 0.1  # only for datasets without an official test split
    probe_size: int = 2000  # fixed held-out images for diagnostics (taken from validation)
    seed: int = 0
    shapes: ShapesConfig = field(default_factory=ShapesConfig)


@dataclass
class ModelConfig:
    """The Vision Transformer. Image size and channels come from the data."""

    patch_size: int = 4
    width: int = 96
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    pool: str = "cls"  # cls | mean
    registers: int = 0
    drop_path: float = 0.0
    qkv_bias: bool = True
    # False: end-to-end. True: detach the residual stream after every layer 1..depth-1 (greedy local
    # learning). A list: detach after exactly those layers.
    gradient_isolation: Union[bool, list[int]] = False


#: ``views.recipe`` values (see :class:`ViewsConfig`).
VIEW_RECIPES = ("symmetric", "dino")


@dataclass
class ViewsConfig:
    """The augmented views shared by every objective that asks for them (made on the device).

    ``global`` views are random resized crops at the image size, ``local`` views smaller crops
    (DINO's multi-crop); a crop covers a fraction ``*_scale`` of the image with an aspect ratio
    (width / height) log-uniform in ``*_ratio``. Photometric augmentations apply to both; for
    ``shapes`` remember that colour jitter and grayscale make the colour factor a nuisance the model
    learns to ignore.

    ``recipe`` says which crop gets which augmentation. ``symmetric``: every crop gets the same
    pipeline -- flip, colour jitter, grayscale, blur and solarize with the probabilities below.
    ``dino``: DINO's per-crop recipe (Caron et al. 2021) -- the first global crop always blurred,
    the second blurred with p 0.1 and solarized with p 0.2, local crops blurred with p 0.5 -- in
    place of ``blur`` and ``solarize``; flip, jitter, grayscale and every strength still apply.

    Strengths (torchvision's ``ColorJitter`` convention): brightness, contrast and saturation
    factors uniform in ``[max(0, 1 - s), 1 + s]``, a hue shift uniform in ``[-hue, hue]`` turns;
    blur sigma uniform in ``blur_sigma`` pixels. The defaults are DINO's and BYOL's.
    """

    global_crops: int = 2
    global_scale: list[float] = field(default_factory=lambda: [0.4, 1.0])
    global_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])
    local_crops: int = 4
    local_size: Union[int, None] = None  # None: half the image size, rounded to the patch size
    local_scale: list[float] = field(default_factory=lambda: [0.1, 0.4])
    local_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])
    recipe: str = "symmetric"  # symmetric | dino
    flip: float = 0.5
    jitter: float = 0.8
    grayscale: float = 0.2
    blur: float = 0.2  # unused by recipe: dino (it sets blur per crop)
    solarize: float = 0.0  # unused by recipe: dino (it sets solarize per crop)
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 2.0])


@dataclass
class TeacherConfig:
    """The EMA teacher shared by every objective that needs one.

    momentum: a number or a schedule spec (see :mod:`workbench.schedules`); DINO and I-JEPA ramp it
    from 0.996 to 1 over training.
    """

    momentum: Union[float, dict[str, Any]] = field(
        default_factory=lambda: {"schedule": "cosine", "start": 0.996, "end": 1.0}
    )


@dataclass
class ObjectiveConfig:
    """One loss in the weighted sum. Its key in ``RunConfig.objectives`` names it in the logs.

    ``weight`` and any numeric entry of ``params`` may be a schedule spec instead of a number,
    e.g. ``{schedule: linear, start: 0, end: 1}`` (see :mod:`workbench.schedules`).
    """

    kind: Union[str, None] = None  # registry name; None means "same as the key"
    weight: Union[float, dict[str, Any]] = 1.0
    layers: Union[str, list[int]] = "last"  # "last", "all" (1..depth) or a list of layer indices
    enabled: bool = True
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DiagnosticsConfig:
    """Per-layer diagnostics on the fixed probe set (``data.probe_size`` held-out images).

    every_n_epochs: 0 runs them only before training and after the last epoch.
    monitor_every_n_steps: cheap collapse monitors on training batches (0: off).
    coherence: ``target:context`` pairs of factors (``region`` as context splits by position).
    max_samples: the probe points that the metrics whose cost grows faster than the probe set see
    (a fixed subset, seeded by the run's seed, the same at every epoch): kNN accuracy (queries x
    bank), uniformity (pairs), and the two augmented views with what is computed from them
    (invariance, alignment, LiDAR). Everything else uses every probe point at a cost linear in N:
    spectra, SIGReg, linear and factor probes (their training split capped at 10,000 points),
    coherence, CKA (feature-space Grams, in row chunks). Up to ``max_samples`` points every value is
    exactly what it is without the cap.

    Memory bound: a pass holds one float32 N x D matrix per (layer, pool) of the N probe images
    (``4 * D * (2 * depth + 1)`` bytes per image) on the training device, plus a part that does not
    grow with N: the two views of at most ``max_samples`` images, one batch's activations and metric
    temporaries. Measured peaks are in the README (*Measured on two CPU cores*, "Memory"). Under DDP,
    rank 0 holds the gathered embeddings; the other ranks hold their share.
    """

    enabled: bool = True
    every_n_epochs: int = 0
    pools: list[str] = field(default_factory=lambda: ["cls", "mean"])
    knn_k: int = 20
    probe_steps: int = 100  # L-BFGS iterations of the label's linear probe (factor probes are closed-form)
    token_images: int = 256  # images used for the token metrics
    save_embeddings: bool = True
    monitor_every_n_steps: int = 50
    coherence: list[str] = field(default_factory=lambda: ["shape:color", "shape:region", "color:shape"])
    max_samples: int = 5000  # probe points seen by kNN, uniformity and the augmented views (see above)


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then cosine decay, stepped every optimisation step."""

    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_fraction: float = 0.05  # of all optimisation steps
    min_lr_ratio: float = 0.01  # final lr = lr * min_lr_ratio
    grad_clip: Union[float, None] = 1.0


@dataclass
class TrainerConfig:
    """What Lightning's ``Trainer`` gets. ``auto`` picks the device and bf16-mixed on CUDA."""

    max_epochs: int = 10
    max_steps: int = -1
    limit_train_batches: Union[int, float] = 1.0
    accelerator: str = "auto"
    devices: Union[int, str] = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"  # auto: bf16-mixed on CUDA, 32-true elsewhere
    log_every_n_steps: int = 10
    check_val_every_n_epoch: int = 1
    enable_progress_bar: bool = False
    compile: bool = False  # torch.compile the backbone
    loggers: list[str] = field(default_factory=lambda: ["csv"])  # csv always runs; + tensorboard, wandb, mlflow


@dataclass
class RunConfig:
    """Everything that defines a run."""

    name: str = ""  # run directory name; empty: <preset>-<dataset>-<timestamp>
    preset: str = ""  # the preset this config started from (informational)
    seed: int = 0
    runs_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objectives: dict[str, ObjectiveConfig] = field(
        default_factory=lambda: {"supervised": ObjectiveConfig()}
    )
    views: ViewsConfig = field(default_factory=ViewsConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    # ---- conversions ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        return _build(cls, data, "")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text_or_path: str | Path) -> "RunConfig":
        text = text_or_path
        if isinstance(text_or_path, Path) or (
            isinstance(text_or_path, str) and "\n" not in text_or_path and text_or_path.endswith((".yaml", ".yml"))
        ):
            path = Path(text_or_path)
            if not path.is_file():
                raise ConfigError("config", str(path), "a path to an existing YAML file")
            text = path.read_text()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError("config", str(text_or_path)[:80], f"valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError("config", data, "a YAML mapping of sections (data, model, ...)")
        return cls.from_dict(data)

    def copy(self) -> "RunConfig":
        return copy.deepcopy(self)

    def with_overrides(self, overrides: "list[str] | dict[str, Any] | None") -> "RunConfig":
        """A copy with dotted overrides applied: ``["model.depth=8"]`` or ``{"model.depth": 8}``."""
        return apply_overrides(self, overrides)

    # ---- derived -----------------------------------------------------------------------------

    def active_objectives(self) -> dict[str, ObjectiveConfig]:
        return {k: v for k, v in self.objectives.items() if v.enabled}


# --------------------------------------------------------------------------------------------
# Typed construction from plain data (YAML, dicts, overrides)
# --------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{origin.__name__}[{args}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the type hint ``tp`` and build nested dataclasses."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return copy.deepcopy(value)
    if origin in (Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, path)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(path, value, f"expected {_type_name(tp)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(path, value, "expected null")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return copy.deepcopy(value)
        if not isinstance(value, dict):
            raise ConfigError(path, value, f"expected a mapping of {tp.__name__} fields")
        return _build(tp, value, path)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, value, f"expected {_type_name(tp)}")
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, value, f"expected a mapping ({_type_name(tp)})")
        key_tp, val_tp = typing.get_args(tp)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{path}.{k}", k, "keys must be strings")
            out[k] = _coerce(v, val_tp, f"{path}.{k}")
        return out
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(path, value, "expected true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(path, value, "expected an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(path, value, "expected a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(path, value, "expected a string")
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # a bug in this file, not user input


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: dict[str, Any], path: str) -> Any:
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        where = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(where, data[unknown[0]], f"unknown key; {path or 'the config'} has {', '.join(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{path}.{k}" if path else k) for k, v in data.items()}
    return cls(**kwargs)


# --------------------------------------------------------------------------------------------
# Dotted overrides
# --------------------------------------------------------------------------------------------


# Fields that name, place or display a run without changing what it learns: two runs that differ
# only here are the same experiment.
PLACEMENT_FIELDS = ("name", "runs_dir", "trainer.enable_progress_bar", "trainer.loggers")
# ... and runs that differ only in these are seeds of one experiment.
SEED_FIELDS = (*PLACEMENT_FIELDS, "seed")


def flat_fields(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as ``{dotted field: value}`` (an empty section stays a ``{}`` value).

    >>> flat_fields({"model": {"depth": 4}, "objectives": {}})
    {'model.depth': 4, 'objectives': {}}
    """
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flat_fields(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_fields(a: "RunConfig", b: "RunConfig", ignore: "tuple[str, ...]" = ()) -> list[str]:
    """The dotted fields in which two configs differ (present in one only, or with other values),
    sorted; fields named in ``ignore`` are left out."""
    fa, fb = flat_fields(a.to_dict()), flat_fields(b.to_dict())
    return sorted(k for k in set(fa) | set(fb) if k not in ignore and (k not in fa or k not in fb or fa[k] != fb[k]))


def experiment_fields(config: "RunConfig") -> dict[str, Any]:
    """The config as dotted fields, less those that name, place or seed a run: two runs with equal
    ``experiment_fields`` are one experiment repeated with other seeds."""
    return {k: v for k, v in flat_fields(config.to_dict()).items() if k not in SEED_FIELDS}


def parse_override(text: str) -> tuple[str, Any]:
    """``"model.depth=8"`` -> ``("model.depth", 8)``; the value is read as YAML (``[1, 2]``, ``null``)."""
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError("override", text, "the form key.path=value, e.g. model.depth=8")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError("override", text, "the form key.path=value, e.g. model.depth=8")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(config: RunConfig, overrides: "list[str] | dict[str, Any] | None") -> RunConfig:
    """Return a copy of ``config`` with dotted overrides applied and type-checked.

    ``objectives.<name>.<field>`` creates objective ``<name>`` when it does not exist yet, so
    ``objectives.mae.weight=0.5`` adds MAE to a run; ``objectives.<name>=null`` removes it.
    """
    if not overrides:
        return config.copy()
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides)
    data = config.to_dict()
    for key, value in items:
        parts = key.split(".")
        node: Any = data
        cls: Any = RunConfig
        for i, part in enumerate(parts[:-1]):
            here = ".".join(parts[: i + 1])
            if isinstance(node, dict) and cls is dict and part not in node:
                node[part] = {}  # params dicts accept new keys
            elif isinstance(node, dict) and part not in node:
                if cls == "objectives":
                    node[part] = dataclasses.asdict(ObjectiveConfig())
                else:
                    raise ConfigError(here, value, f"unknown key; allowed: {', '.join(node)}")
            if not isinstance(node[part], dict):
                raise ConfigError(here, node[part], "is a value, not a section; cannot set a sub-key")
            cls = _child_type(cls, part)
            node = node[part]
        last = parts[-1]
        if isinstance(node, dict) and last not in node and cls not in (dict, "objectives"):
            raise ConfigError(key, value, f"unknown key; allowed: {', '.join(node)}")
        if value is None and cls == "objectives":
            node.pop(last, None)
        else:
            node[last] = value
    return RunConfig.from_dict(data)


def _child_type(cls: Any, part: str) -> Any:
    """The kind of node under ``part``: a dataclass, ``"objectives"`` (name -> objective) or dict."""
    if cls == "objectives":
        return ObjectiveConfig
    if cls is dict:
        return dict
    tp = _hints(cls).get(part)
    if part == "objectives" and cls is RunConfig:
        return "objectives"
    if dataclasses.is_dataclass(tp):
        return tp
    return dict
