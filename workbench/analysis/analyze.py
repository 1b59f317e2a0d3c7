"""Any Vision Transformer under the microscope: the per-layer diagnostics of a model nobody trained here.

:func:`analyze` embeds the probe set of a dataset (``shapes`` by default, at the model's input
size) at every layer of a given model, computes every diagnostic of the training callback -- by
the callback's own pass, :meth:`~workbench.training.diagnostics_callback.DiagnosticsCallback.measure`
-- and writes a run directory that every figure, widget, readout and layout reads like a trained
run's::

    runs/<name>/
      config.yaml          the data, views and diagnostics settings, and the model's shape (preset
                           ``analyze``, no objectives: fit refuses it, an analysis trains nothing)
      analysis.yaml        what was analysed: the model's source, weights and class, which tokens
                           each layer is, the preprocessing (input size, resize, mean, std), the device
      summary.json         status, wall time, device, last-layer headline numbers
      diagnostics.csv      one pass, epoch 0
      embeddings/epoch=000.npz, probe.npz, probe.json

Models (:mod:`workbench.models.adapters` says how each one's layers are read):

* a timm model name (``"vit_tiny_patch16_224"``, ``"vit_small_patch16_224.dino"``), built with
  ``model_kwargs`` (``img_size``, ``patch_size``, ...), randomly initialised unless
  ``pretrained=True`` (downloads) or ``checkpoint=FILE`` (local weights);
* a workbench run (``run="runs/<name>"``, its ``checkpoints/last.ckpt``) or such a checkpoint file
  alone (``checkpoint=FILE``): by default analysed on the run's own data, views, diagnostics and
  seed, so the pass is the one its training callback made at its last epoch;
* an ``nn.Module``: a timm ViT, the workbench's ``VisionTransformer`` or ``WorkbenchModule``, or
  any module with ``adapter=`` (a function images -> list of per-layer tokens) and ``num_prefix=``.

Nothing is written until the model is built and the data loaded; the directory is assembled under
a temporary name and renamed into place when the pass has finished, so a failure leaves nothing.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import torch
import yaml
from torch import nn

from ..atomic import atomic_write_text
from ..config import DataConfig, ModelConfig, ObjectiveConfig, RunConfig, apply_overrides, parse_override
from ..errors import ConfigError, DataError
from ..models.adapters import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MODEL_KINDS,
    LayerwiseModel,
    Preprocess,
    adapter_tokens,
    create_timm,
    describe_timm,
    is_timm_vit,
    is_workbench_checkpoint,
    load_weights,
    read_checkpoint,
    timm_data_config,
    timm_input_side,
    timm_tokens,
    workbench_tokens,
)
from ..models.vit import VisionTransformer
from ..runs import ANALYSIS_FILE, Run, write_summary

# config.yaml's preset field is "analyze:<model>" (list_runs shows it, figures label runs by it, and
# analyses of two models of one shape on one dataset are two experiments, not two seeds of one)
PRESET = "analyze"
# the config sections an analysis reads (and ``seed``); everything else in config.yaml describes no training
OVERRIDABLE = ("data.", "diagnostics.", "views.")


@dataclasses.dataclass
class _Source:
    """A resolved model: its layer-wise view, its shape, and what analysis.yaml says about it."""

    layerwise: LayerwiseModel
    shape: dict[str, Any]
    about: dict[str, Any]
    base: RunConfig | None = None  # a workbench model's own config (data, views, diagnostics, seed)
    needs_data_stats: bool = False  # normalise with the data's own statistics (a bare workbench ViT)


def analyze(
    model: "str | nn.Module | Run | None" = None,
    data: "str | DataConfig | dict | None" = None,
    *,
    run: "str | Path | Run | None" = None,
    checkpoint: "str | Path | None" = None,
    pretrained: bool = False,
    model_kwargs: "dict[str, Any] | None" = None,
    adapter: "Callable[[torch.Tensor], Sequence[torch.Tensor]] | None" = None,
    num_prefix: int | None = None,
    image_size: int | None = None,
    mean: "Sequence[float] | None" = None,
    std: "Sequence[float] | None" = None,
    interpolation: str | None = None,
    overrides: "list[str] | dict[str, Any] | None" = None,
    name: str = "",
    runs_dir: "str | Path" = "runs",
    out: "str | Path | None" = None,
    cache_dir: "str | Path | None" = "data",
    device: "str | torch.device | None" = None,
    batch_size: int = 256,
) -> Run:
    """Run the per-layer diagnostics on any ViT and write a run directory; return its :class:`Run`.

    Args:
        model: a timm model name, an ``nn.Module`` (a timm ViT, the workbench's ``VisionTransformer``
            or ``WorkbenchModule``, or any module with ``adapter``), or a workbench :class:`Run`.
        data: a dataset name (``shapes``, ``cifar10``, ...), a ``DataConfig`` or a dict of its fields.
            Default: a workbench model's own data; ``shapes`` otherwise. ``shapes`` is generated at
            the model's input size unless ``data.shapes.image_size`` (or ``data.image_size``) is set.
        run: a workbench run directory: its ``checkpoints/last.ckpt`` is analysed.
        checkpoint: a weights file: for a timm model (name or module) its state dict (``torch.save``
            or ``.safetensors``); alone, a workbench run's checkpoint.
        pretrained: timm's pretrained weights (downloaded: needs internet access).
        model_kwargs: arguments of ``timm.create_model`` (``img_size=64, patch_size=8``).
        adapter, num_prefix: for any other module: ``adapter(images) -> [B x T x D per layer]``,
            layer 0 first, and the number of leading prefix tokens.
        image_size: the input side (default: the model's own). A timm name is built at this size;
            a model that takes one size only must be given that size.
        mean, std, interpolation: override the model's own preprocessing (timm's data config;
            a workbench model's training-set statistics; ImageNet's for an adapter).
        overrides: dotted ``data.*``, ``diagnostics.*``, ``views.*`` and ``seed`` settings.
        name, runs_dir, out: the directory is ``out`` if given, else ``runs_dir/name`` (a generated
            ``analyze-<model>-<data>-<time>`` when ``name`` is empty); it must not exist yet.
        cache_dir: where generated data is cached.
        device: default CUDA when available, else CPU. The pass runs in float32. A model given as an
            object is moved there and left in eval mode.
        batch_size: images per forward pass (every layer's tokens of a batch are held at once).
    """
    start = time.perf_counter()
    source = _resolve_model(model, run, checkpoint, pretrained, model_kwargs, adapter, num_prefix, image_size,
                            mean, std, interpolation)
    config = _analysis_config(source, data, overrides)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError("batch_size", batch_size, "an integer >= 1")
    target = _target_dir(out, name, runs_dir, source, config)
    config.name, config.runs_dir = target.name, str(target.parent)

    from ..data import TensorDataModule

    dm = TensorDataModule(config.data, cache_dir=cache_dir).prepare()
    probe, classes, specs = dm.splits["probe"], dm.data.classes, dm.data.factors
    layerwise = source.layerwise
    if source.needs_data_stats:  # a bare workbench ViT: normalised as its training normalises
        info = dm.info
        layerwise = LayerwiseModel(layerwise.tokens_fn, layerwise.num_prefix,
                                   dataclasses.replace(layerwise.preprocess, mean=tuple(info.mean), std=tuple(info.std)),
                                   layerwise.model)
    _check_channels(layerwise.preprocess, probe.images.shape[1])
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    layerwise = layerwise.to(device).eval()
    probe = probe.to(device)
    shape = _measured_shape(layerwise, probe.images[:2], source.shape)
    config.model = _model_config(shape)
    if layerwise.num_prefix == 0:
        if "cls" in config.diagnostics.pools and _asked(overrides, "diagnostics.pools"):
            raise ConfigError("diagnostics.pools", config.diagnostics.pools,
                              "['mean']: the model has no prefix (CLS) token to pool")
        config.diagnostics.pools = ["mean"]

    from ..training.diagnostics_callback import DiagnosticsCallback

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        atomic_write_text(partial / "config.yaml", config.to_yaml())
        about = _about(source, layerwise, config, probe, dm.data.image_shape, device, shape)
        atomic_write_text(partial / ANALYSIS_FILE, yaml.safe_dump(about, sort_keys=False))
        write_summary(partial, {"status": "running", "name": config.name})
        callback = DiagnosticsCallback(partial, config.diagnostics, config.seed, batch_size=batch_size)
        callback.measure(layerwise, probe, classes, specs, 0, config.views)
        write_summary(partial, {
            "status": "completed", "name": config.name, "kind": "analysis", "wall_s": round(time.perf_counter() - start, 2),
            "epochs": 0, "steps": 0, "diagnostics_s": round(callback.seconds, 2), "device": str(device),
            "precision": "32-true", "headline": _headline(partial, config.diagnostics.pools),
        })
        os.rename(partial, target)  # a target that appeared meanwhile with files in it makes this fail
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return Run(target)


# ---- the model -----------------------------------------------------------------------------


def _resolve_model(model, run, checkpoint, pretrained, model_kwargs, adapter, num_prefix, image_size,
                   mean, std, interpolation) -> _Source:
    if isinstance(model, Run):
        model, run = None, model if run is None else run
    given = [k for k, v in (("model", model), ("run", run)) if v is not None]
    if len(given) > 1:
        raise ConfigError("run", str(run), "either a model or a run, not both")
    if pretrained and checkpoint is not None:
        raise ConfigError("pretrained", pretrained, "false when a checkpoint is given (its weights are loaded)")
    if adapter is not None and num_prefix is None:
        raise ConfigError("num_prefix", num_prefix, "the number of leading prefix tokens (CLS, registers) that "
                                                    "the adapter's tokens start with, e.g. 1 (0: none)")
    if adapter is None and num_prefix is not None:
        raise ConfigError("num_prefix", num_prefix, "given only with adapter= (other models state their own)")
    overrides = {"mean": mean, "std": std, "interpolation": interpolation}
    if run is not None or (model is None and checkpoint is not None):
        if pretrained or model_kwargs or adapter is not None:
            raise ConfigError("pretrained" if pretrained else "model_kwargs" if model_kwargs else "adapter",
                              pretrained or model_kwargs or adapter, "left out for a workbench run (its config builds it)")
        return _workbench_checkpoint(run, checkpoint, image_size, overrides)
    if model is None:
        raise ConfigError("model", None, f"a model to analyse: {MODEL_KINDS}; or run=RUN_DIR / checkpoint=FILE")
    if isinstance(model, str):
        if adapter is not None:
            raise ConfigError("adapter", adapter, "left out for a timm model (timm_tokens reads its layers)")
        kwargs = dict(model_kwargs or {})
        if image_size is not None:
            if kwargs.setdefault("img_size", image_size) != image_size:
                raise ConfigError("image_size", image_size, f"the model's img_size ({kwargs['img_size']}), or left out")
        built = create_timm(str(model), pretrained, kwargs)
        if checkpoint is not None:
            load_weights(built, checkpoint)
        about = {"source": "timm", "name": str(model), "pretrained": bool(pretrained),
                 "weights": str(Path(checkpoint).resolve()) if checkpoint is not None
                 else "timm's pretrained weights" if pretrained else "random initialisation",
                 "model_kwargs": kwargs}
        return _timm_source(built, about, image_size, overrides)
    if not isinstance(model, nn.Module):
        raise ConfigError("model", type(model).__name__, MODEL_KINDS)
    if model_kwargs:
        raise ConfigError("model_kwargs", model_kwargs, "left out for a model that is already built")
    if checkpoint is not None:
        load_weights(model, checkpoint)
    weights = str(Path(checkpoint).resolve()) if checkpoint is not None else "as given"
    if adapter is not None:
        return _adapter_source(model, adapter, num_prefix, image_size, overrides, weights)
    if isinstance(getattr(model, "backbone", None), VisionTransformer) and hasattr(model, "data_info"):
        return _workbench_module(model, image_size, overrides, {"source": "workbench-module", "weights": weights})
    if isinstance(model, VisionTransformer):
        return _workbench_vit(model, image_size, overrides, weights)
    if is_timm_vit(model):
        name = getattr(getattr(model, "pretrained_cfg", None) or {}, "get", lambda k: None)("architecture")
        about = {"source": "timm", "name": name or type(model).__name__, "weights": weights}
        return _timm_source(model, about, image_size, overrides)
    raise ConfigError("model", type(model).__name__, f"a model with per-layer token outputs: {MODEL_KINDS}")


def _preprocess(side: int | None, mean, std, interpolation: str, channels: int | None, overrides: dict) -> Preprocess:
    return Preprocess(
        image_size=side,
        mean=tuple(float(m) for m in (overrides["mean"] if overrides["mean"] is not None else mean)),
        std=tuple(float(s) for s in (overrides["std"] if overrides["std"] is not None else std)),
        interpolation=overrides["interpolation"] or interpolation, channels=channels,
    )


def _side(fixed: int | None, default: int | None, image_size: int | None, patch: int | None, what: str) -> int | None:
    """The input side: ``image_size`` if given (checked against a fixed size and the patch size)."""
    if image_size is None:
        return fixed if fixed is not None else default
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
        raise ConfigError("image_size", image_size, "a positive integer side")
    if fixed is not None and image_size != fixed:
        raise ConfigError("image_size", image_size,
                          f"{fixed}, the only input size {what} takes (leave image_size out; a timm model is built "
                          f"at another size with its name and model_kwargs={{'img_size': {image_size}}}, "
                          f"--model-arg img_size={image_size}, which resamples the position embeddings of its weights)")
    if patch and image_size % patch:
        raise ConfigError("image_size", image_size, f"a multiple of the patch size {patch} of {what}")
    return image_size


def _timm_source(model: nn.Module, about: dict, image_size: int | None, overrides: dict) -> _Source:
    data_config = timm_data_config(model)
    shape = describe_timm(model)
    fixed = timm_input_side(model)
    side = _side(fixed, int(data_config["input_size"][-1]), image_size, shape["patch_size"], about["name"])
    interpolation = data_config.get("interpolation", "bicubic")
    interpolation = interpolation if interpolation in ("bicubic", "bilinear", "nearest") else "bicubic"
    channels = int(data_config["input_size"][0])
    pre = _preprocess(side, data_config["mean"], data_config["std"], interpolation, channels, overrides)
    about = {**about, "class": f"{type(model).__module__}.{type(model).__qualname__}",
             "layers": (f"0: the tokens entering block 1 (patch embedding, positions, prefix tokens); 1..{shape['depth']}: "
                        f"block outputs, the residual stream, through timm's forward_intermediates(norm=False); "
                        f"layer {shape['depth']} after the model's final norm (= forward_features)"),
             "final_norm": "applied to the last layer only", "timm_data_config": _plain(data_config)}
    layerwise = LayerwiseModel(timm_tokens(model), shape["num_prefix"], pre, model)
    return _Source(layerwise, shape, about)


def _workbench_vit(vit: VisionTransformer, image_size: int | None, overrides: dict, weights: str) -> _Source:
    side = _side(None, vit.image_size, image_size, vit.patch_size, "this VisionTransformer")
    # mean / std: the data's training-set statistics, filled in once the data is loaded
    pre = _preprocess(side, overrides["mean"] or (0.0,) * vit.in_channels, overrides["std"] or (1.0,) * vit.in_channels,
                      "bicubic", vit.in_channels, overrides)
    about = {"source": "workbench-vit", "class": "workbench.models.vit.VisionTransformer", "weights": weights,
             "layers": _workbench_layers(vit.depth), "final_norm": "applied to the last layer only"}
    return _Source(LayerwiseModel(workbench_tokens(vit), vit.num_prefix, pre, vit), _workbench_shape(vit), about,
                   needs_data_stats=overrides["mean"] is None or overrides["std"] is None)


def _workbench_module(module: nn.Module, image_size: int | None, overrides: dict, about: dict,
                      base: RunConfig | None = None) -> _Source:
    vit, info = module.backbone, module.data_info
    side = _side(None, vit.image_size, image_size, vit.patch_size, "this run's VisionTransformer")
    pre = _preprocess(side, info.mean, info.std, "bicubic", vit.in_channels, overrides)
    about = {**about, "class": "workbench.models.vit.VisionTransformer", "layers": _workbench_layers(vit.depth),
             "final_norm": "applied to the last layer only"}
    return _Source(LayerwiseModel(workbench_tokens(vit), vit.num_prefix, pre, vit), _workbench_shape(vit), about,
                   base=base if base is not None else module.config)


def _workbench_checkpoint(run, checkpoint, image_size: int | None, overrides: dict) -> _Source:
    from ..training.module import WorkbenchModule

    if run is not None:
        run_dir = run.path if isinstance(run, Run) else Path(run)
        path = Path(checkpoint) if checkpoint is not None else run_dir / "checkpoints" / "last.ckpt"
        if checkpoint is None and not path.is_file():
            raise ConfigError("run", str(run_dir), "a workbench run directory holding checkpoints/last.ckpt "
                                                   "(a run that finished at least one epoch)")
    else:
        run_dir, path = None, Path(checkpoint)
    state = read_checkpoint(path)
    if not is_workbench_checkpoint(state):
        raise ConfigError("checkpoint", str(path), "a workbench run's checkpoint (runs/<name>/checkpoints/last.ckpt); "
                                                   "weights of a timm model need its name too (--timm NAME --checkpoint FILE)")
    hp = state["hyper_parameters"]
    try:
        module = WorkbenchModule(hp["config"], hp["data_info"])
        module.load_state_dict(state["state_dict"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise DataError(f"{path} does not load into the model its own config describes ({type(exc).__name__}: "
                        f"{str(exc)[:200]}); the file may be damaged or from another version of the workbench") from None
    about = {"source": "workbench-run" if run_dir is not None else "workbench-checkpoint",
             "name": run_dir.name if run_dir is not None else path.stem,
             "weights": str(path.resolve()), "checkpoint_epoch": state.get("epoch"),
             "checkpoint_step": state.get("global_step")}
    return _workbench_module(module, image_size, overrides, about, base=module.config)


def _adapter_source(model: nn.Module, adapter, num_prefix: int, image_size: int | None, overrides: dict,
                    weights: str) -> _Source:
    if not isinstance(num_prefix, int) or isinstance(num_prefix, bool) or num_prefix < 0:
        raise ConfigError("num_prefix", num_prefix, "an integer >= 0: the leading non-patch tokens (CLS, registers)")
    pretrained_cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(pretrained_cfg, dict) and "mean" in pretrained_cfg:  # a timm model: its own data config
        data_config = timm_data_config(model)
        mean, std, interp = data_config["mean"], data_config["std"], data_config.get("interpolation", "bicubic")
        interp = interp if interp in ("bicubic", "bilinear", "nearest") else "bicubic"
    else:
        mean, std, interp = IMAGENET_MEAN, IMAGENET_STD, "bicubic"
    side = _side(None, None, image_size, None, type(model).__name__)
    channels = len(overrides["mean"]) if overrides["mean"] is not None else 3
    pre = _preprocess(side, mean, std, interp, channels, overrides)
    about = {"source": "module", "class": f"{type(model).__module__}.{type(model).__qualname__}", "weights": weights,
             "adapter": getattr(adapter, "__qualname__", type(adapter).__name__),
             "layers": "as the adapter returns them, layer 0 first; the last one as the model reads it out",
             "final_norm": "as the adapter's last entry has it"}
    shape = {"depth": None, "width": None, "patch_size": None, "heads": None, "mlp_ratio": None,
             "num_prefix": num_prefix, "registers": 0, "pool": "cls" if num_prefix else "mean"}
    return _Source(LayerwiseModel(adapter_tokens(adapter, num_prefix), num_prefix, pre, model), shape, about)


def _workbench_layers(depth: int) -> str:
    return (f"0: patch embedding with positions and prefix tokens; 1..{depth}: block outputs, the residual "
            f"stream; layer {depth} after the final norm (ViTOutput.final)")


def _workbench_shape(vit: VisionTransformer) -> dict[str, Any]:
    return {"depth": vit.depth, "width": vit.width, "patch_size": vit.patch_size, "heads": vit.heads,
            "mlp_ratio": vit.blocks[0].mlp.fc1.out_features / vit.width, "num_prefix": vit.num_prefix,
            "registers": vit.num_prefix - 1, "pool": vit.pool}


def _measured_shape(layerwise: LayerwiseModel, images: torch.Tensor, shape: dict) -> dict[str, Any]:
    """The model's shape, completed (an adapter's depth, width, patch size) from one small forward,
    which also checks that the model runs on the preprocessed images."""
    with torch.no_grad():
        try:
            out = layerwise.eval()(images)
        except (ConfigError, torch.OutOfMemoryError):
            raise
        except (RuntimeError, ValueError, AssertionError) as exc:  # the model refuses the input
            p = layerwise.preprocess
            raise ConfigError("image_size", p.image_size or tuple(images.shape[-2:]),
                              f"an input the model takes: it failed on {len(images)} images of "
                              f"{tuple(layerwise.prepare(images).shape[1:])} ({type(exc).__name__}: {str(exc)[:200]}); "
                              "set image_size to the model's input size") from None
    measured = dict(shape)
    measured["depth"] = out.depth
    measured["width"] = int(out.final.shape[-1])
    if measured.get("patch_size") is None:  # the side over the token grid's side, when square
        patches = out.layers[-1].shape[1] - out.num_prefix
        grid = int(round(patches ** 0.5))
        side = layerwise.prepare(images).shape[-1]
        measured["patch_size"] = side // grid if grid * grid == patches and side % grid == 0 else 1
    return measured


def _model_config(shape: dict) -> ModelConfig:
    """config.yaml's model section: the analysed model's shape where it is known (heads and MLP
    ratio of an adapter's model are not: they keep ModelConfig's defaults, and analysis.yaml lists them)."""
    defaults = ModelConfig()
    return ModelConfig(
        patch_size=int(shape["patch_size"]), width=int(shape["width"]), depth=int(shape["depth"]),
        heads=int(shape["heads"]) if shape.get("heads") else defaults.heads,
        mlp_ratio=float(shape["mlp_ratio"]) if shape.get("mlp_ratio") else defaults.mlp_ratio,
        pool=shape.get("pool") or "cls", registers=max(int(shape["num_prefix"]) - 1, 0),
    )


def _check_channels(pre: Preprocess, channels: int) -> None:
    if pre.channels is not None and channels != pre.channels and not (channels == 1 and pre.channels == 3):
        raise ConfigError("data", f"{channels}-channel images",
                          f"images with the model's {pre.channels} channels (grey images are repeated to RGB)")


# ---- the config ----------------------------------------------------------------------------


def _asked(overrides, key: str) -> bool:
    items = overrides.keys() if isinstance(overrides, dict) else [parse_override(o)[0] for o in overrides or []]
    return any(k == key or k.startswith(key + ".") for k in items)


def _analysis_config(source: _Source, data, overrides) -> RunConfig:
    """The analysis' RunConfig: data, views, diagnostics and seed (from a workbench model's config,
    or the defaults), then ``data`` and the overrides; validated where validate_config can."""
    base = source.base
    config = RunConfig(preset=f"{PRESET}:{_label(source)}", objectives={})
    if base is not None:
        config.seed, config.data, config.views, config.diagnostics = base.seed, base.data, base.views, base.diagnostics
    explicit_size = False
    if isinstance(data, DataConfig):
        config.data, explicit_size = dataclasses.replace(data), True
    elif isinstance(data, dict):
        config.data, explicit_size = RunConfig.from_dict({"data": data}).data, True
    elif isinstance(data, str):
        if base is None or data != base.data.name:
            config.data = DataConfig(name=data)
    elif data is not None:
        raise ConfigError("data", data, "a dataset name (shapes, cifar10, ...), a DataConfig or a dict of its fields")
    items = list(overrides.items()) if isinstance(overrides, dict) else [parse_override(o) for o in overrides or []]
    for key, value in items:
        if not (key == "seed" or key.startswith(OVERRIDABLE)):
            raise ConfigError(key, value, "a data.*, diagnostics.*, views.* field or seed: an analysis trains nothing")
    config = apply_overrides(config, dict(items))
    config.objectives = {}
    side = source.layerwise.preprocess.image_size
    unset = not explicit_size and not _asked(overrides, "data.shapes.image_size") and not _asked(overrides, "data.image_size")
    if config.data.name == "shapes" and side is not None and unset and (base is None or config.data != base.data):
        config.data.shapes.image_size = side  # generated at the size the model takes, not upsampled
    _validate(config)
    return config


def _label(source: _Source) -> str:
    """The model's name: a timm name, a run's name, or its class."""
    about = source.about
    return str(about.get("name") or about.get("class", "").rsplit(".", 1)[-1] or about["source"])


def _validate(config: RunConfig) -> None:
    """validate_config, the one place of config checks, on a stand-in: an analysis has no objectives
    and its model need not be a workbench ViT, so a one-layer model and one objective stand in for them."""
    from ..validation import validate_config

    stand_in = config.copy()
    stand_in.name = ""
    stand_in.model = ModelConfig(patch_size=1, width=1, depth=1, heads=1)
    stand_in.objectives = {"supervised": ObjectiveConfig()}
    validate_config(stand_in)


def _target_dir(out, name: str, runs_dir, source: _Source, config: RunConfig) -> Path:
    if out is not None:
        target = Path(out)
    elif name:
        target = Path(runs_dir) / name
    else:
        label = _label(source).replace("/", "-").replace(".", "-")
        base = f"{PRESET}-{label}-{config.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        for i in range(1000):
            target = Path(runs_dir) / (base if i == 0 else f"{base}-{i + 1}")
            if not target.exists():
                break
    if target.exists():
        raise ConfigError("out", str(target), "a directory that does not exist yet (an analysis never writes into "
                                              "another run); pick another name")
    from ..validation import RUN_NAME

    if not RUN_NAME.match(target.name):
        raise ConfigError("name", target.name, "letters, digits and _ . = + - (no slashes or spaces)")
    return target


# ---- what is written -----------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """YAML-safe plain values (tuples to lists, numbers to floats / ints)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (int, float, str):  # subclasses too (torch's version string, numpy scalars)
        if isinstance(value, kind):
            return kind(value)
    return str(value)


def _about(source: _Source, layerwise: LayerwiseModel, config: RunConfig, probe, data_shape, device,
           shape: dict) -> dict[str, Any]:
    from importlib.metadata import version

    import timm

    __version__ = version("workbench")  # the installed package's (workbench/__init__ imports this module)

    p = layerwise.preprocess
    side = data_shape[-1]
    model = layerwise.model
    about = {
        "model": {**source.about, "parameters": sum(t.numel() for t in model.parameters()) if model is not None else None,
                  "num_prefix": layerwise.num_prefix, "depth": shape["depth"], "width": shape["width"],
                  "patch_size": shape["patch_size"],
                  "unknown_shape_fields": [k for k in ("heads", "mlp_ratio") if not shape.get(k)]},
        "preprocessing": {
            "image_size": p.image_size or side, "data_image_size": side,
            "resized": p.image_size is not None and p.image_size != side, "interpolation": p.interpolation,
            "mean": list(p.mean), "std": list(p.std),
            "grey_to_rgb": p.channels == 3 and data_shape[0] == 1,
            "centre_crop": "none: the probe images are whole scenes whose factors describe the whole image",
        },
        "data": {"name": config.data.name, "probe_images": len(probe), "image_shape": list(data_shape)},
        "device": str(device), "precision": "float32",
        "versions": {"workbench": __version__, "torch": torch.__version__, "timm": timm.__version__},
    }
    return _plain(about)


def _headline(directory: Path, pools: Sequence[str]) -> dict[str, float]:
    """The last layer's label probes and RankMe (mean pool when recorded, else the first pool)."""
    table = pd.read_csv(directory / "diagnostics.csv")
    pool = "mean" if "mean" in pools else pools[0]
    rows = table[(table["pool"] == pool)]
    if rows.empty:
        return {}
    last = rows[rows["layer"] == rows["layer"].max()]
    return {f"last_layer/{m}": float(last.loc[last["metric"] == m, "value"].iloc[0])
            for m in ("linear_acc", "knn_acc", "rankme") if (last["metric"] == m).any()}
