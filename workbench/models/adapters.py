"""Every layer's tokens of any Vision Transformer, in the form the diagnostics read.

The diagnostics read a model through one interface: uint8 images in, a
:class:`~workbench.models.vit.ViTOutput` out (every layer's ``B x T x D`` tokens, layer 0 first,
and the number of leading prefix tokens such as CLS and registers). :class:`LayerwiseModel` gives
any model that interface, from one of three token functions:

* :func:`timm_tokens` -- a timm Vision Transformer (``VisionTransformer``, DeiT, EVA, ... : any
  timm model whose ``forward_intermediates`` takes ``return_prefix_tokens`` and
  ``output_fmt="NLC"``). The tokens come from timm's own ``forward_intermediates`` with
  ``norm=False``: layers 1..depth are the block outputs, the raw residual stream, prefix tokens
  first. Layer 0 is what enters the first block (patch embedding, positions, prefix tokens and
  timm's ``norm_pre``), taken in the same forward pass by a pre-hook on the first block. **The
  final norm is applied to the last layer only**: the last layer is reported as the model's own
  read-out, ``norm(block_depth)``, which equals ``forward_features`` (``forward_intermediates``
  returns it as its first value, and its ``norm=True`` applies the same norm to every
  intermediate); the workbench's own ViT reports its last layer the same way
  (:attr:`ViTOutput.final`).
* :func:`workbench_tokens` -- the workbench's :class:`~workbench.models.vit.VisionTransformer`.
* :func:`adapter_tokens` -- any ``nn.Module``, through a small function: normalised float images
  ``B x C x H x W`` in, a list of per-layer ``B x T x D`` tensors out (layer 0 first; the last
  entry is what the model outputs, after its final norm if it has one), plus the number of prefix
  tokens (0 when there is no CLS token: only the mean of the tokens is then recorded)::

      def tokens(images):                       # a model that keeps its blocks in .layers
          x = model.stem(images)
          out = [x]
          for layer in model.layers:
              x = layer(x)
              out.append(x)
          out[-1] = model.norm(x)
          return out

      wb.analyze(model, adapter=tokens, num_prefix=1)

Preprocessing (:class:`Preprocess`), as the model's own data configuration says: uint8 to
[0, 1]; a grey image repeated to three channels when the model takes RGB; resized to the model's
input side with its interpolation (antialiased when shrinking, clamped to [0, 1] as a resize of
uint8 images is); normalised with its mean and standard deviation. There is no centre crop (timm's
``crop_pct``): the probe images are whole scenes whose factors (position, count) describe the
whole image, and a crop would cut objects away.

Weights: :func:`create_timm` builds a timm model by name (``pretrained=True`` downloads, so it
needs a machine online); :func:`load_weights` loads a local state dict (``torch.save`` file read
with ``torch.load(weights_only=True)``, or ``.safetensors``) strictly, through timm's own
checkpoint filter for the model's family (which resamples position embeddings to the model's
input size).

Imports torch only; timm is imported where a timm model is asked for.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError, WorkbenchError
from .vit import VisionTransformer, ViTOutput

#: ImageNet's channel statistics: the normalisation of a model that states none.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

INTERPOLATIONS = ("bicubic", "bilinear", "nearest")

# images -> (layers, final): layer 0 first; ``final`` is the last layer as the model reads it out
TokenFn = Callable[[torch.Tensor], "tuple[list[torch.Tensor], torch.Tensor]"]

MODEL_KINDS = ("a timm Vision Transformer (a model with forward_intermediates(..., return_prefix_tokens, "
               "output_fmt='NLC')), the workbench's VisionTransformer or WorkbenchModule, or any nn.Module with "
               "adapter=<function images -> list of per-layer B x T x D tokens> and num_prefix=<prefix tokens> "
               "(see workbench.models.adapters)")


@dataclass(frozen=True)
class Preprocess:
    """How uint8 probe images become the model's input.

    image_size: the side the model takes (``None``: the images' own side, unresized).
    mean, std: per-channel normalisation of [0, 1] images (the model's channels).
    interpolation: ``bicubic``, ``bilinear`` or ``nearest``, for the resize.
    channels: the channels the model takes (``None``: the images' own); grey images are repeated
        to three channels for an RGB model.
    """

    image_size: int | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bicubic"
    channels: int | None = None

    def __post_init__(self) -> None:
        if self.image_size is not None and (not isinstance(self.image_size, int) or self.image_size < 1):
            raise ConfigError("image_size", self.image_size, "a positive integer side, or None for the images' own")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError("interpolation", self.interpolation, f"one of {', '.join(INTERPOLATIONS)}")
        if len(self.mean) != len(self.std) or not self.mean or any(s <= 0 for s in self.std):
            raise ConfigError("std", self.std, f"as many positive numbers as mean has entries ({len(self.mean)})")
        if self.channels is not None and self.channels != len(self.mean):
            raise ConfigError("mean", self.mean, f"one value per channel of the model ({self.channels})")

    def to_dict(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "mean": [float(m) for m in self.mean],
                "std": [float(s) for s in self.std], "interpolation": self.interpolation, "channels": self.channels}


class LayerwiseModel(nn.Module):
    """A model seen through its per-layer tokens: ``forward(uint8 images) -> ViTOutput``.

    Args:
        tokens: ``images -> (layers, final)`` (:func:`timm_tokens`, :func:`workbench_tokens`,
            :func:`adapter_tokens`), called on preprocessed float images.
        num_prefix: leading non-patch tokens of every layer (CLS, registers, distillation token).
        preprocess: resize and normalisation (:class:`Preprocess`).
        model: the wrapped module, registered so that ``.to(device)`` and ``.eval()`` reach it.
    """

    def __init__(self, tokens: TokenFn, num_prefix: int, preprocess: Preprocess, model: nn.Module | None = None):
        super().__init__()
        if not isinstance(num_prefix, int) or isinstance(num_prefix, bool) or num_prefix < 0:
            raise ConfigError("num_prefix", num_prefix, "an integer >= 0: the leading non-patch tokens (CLS, registers)")
        self.tokens_fn = tokens
        self.num_prefix = num_prefix
        self.preprocess = preprocess
        self.model = model
        c = len(preprocess.mean)
        self.register_buffer("pixel_mean", torch.tensor(preprocess.mean, dtype=torch.float32).view(1, c, 1, 1),
                             persistent=False)
        self.register_buffer("pixel_std", torch.tensor(preprocess.std, dtype=torch.float32).view(1, c, 1, 1),
                             persistent=False)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or float in [0, 1]) ``B x C x H x W`` images -> the model's normalised input."""
        p = self.preprocess
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images
        if p.channels is not None and x.shape[1] != p.channels:
            if x.shape[1] == 1 and p.channels == 3:
                x = x.expand(-1, 3, -1, -1)
            else:
                raise ConfigError("data", f"{x.shape[1]}-channel images",
                                  f"images with the model's {p.channels} channels (grey images are repeated to RGB; "
                                  "other conversions are not made)")
        side = p.image_size
        if side is not None and tuple(x.shape[-2:]) != (side, side):
            shrinking = side < min(x.shape[-2:])
            kwargs = {} if p.interpolation == "nearest" else {"align_corners": False, "antialias": shrinking}
            x = F.interpolate(x, size=(side, side), mode=p.interpolation, **kwargs).clamp(0.0, 1.0)
        return (x - self.pixel_mean) / self.pixel_std

    def forward(self, images: torch.Tensor) -> ViTOutput:
        layers, final = self.tokens_fn(self.prepare(images))
        return ViTOutput(layers=list(layers), final=final, num_prefix=self.num_prefix)


# ---- timm ------------------------------------------------------------------------------------


def is_timm_vit(model: nn.Module) -> bool:
    """Whether ``model`` exposes per-block tokens the way :func:`timm_tokens` reads them."""
    fi = getattr(model, "forward_intermediates", None)
    if not callable(fi) or not isinstance(getattr(model, "num_prefix_tokens", None), int):
        return False
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, (nn.ModuleList, nn.Sequential)) or len(blocks) == 0:
        return False
    try:
        params = inspect.signature(fi).parameters
    except (TypeError, ValueError):
        return False
    return "return_prefix_tokens" in params and "output_fmt" in params and "norm" in params


def check_timm_vit(model: nn.Module, name: str) -> None:
    """Raise :class:`ConfigError` naming ``name`` when ``model`` has no per-layer token outputs."""
    if not is_timm_vit(model):
        raise ConfigError("model", name, f"a model with per-layer token outputs: {MODEL_KINDS}; "
                                         f"{type(model).__name__} has none")


def timm_tokens(model: nn.Module) -> TokenFn:
    """Every layer's tokens of a timm Vision Transformer, through its ``forward_intermediates``.

    Layer 0 is the input of the first block (captured by a forward pre-hook in the same pass);
    layers 1..depth are the block outputs without the final norm, prefix tokens first; ``final``
    is ``norm(block_depth)``, i.e. ``forward_features``.
    """
    check_timm_vit(model, type(model).__name__)
    first = model.blocks[0]

    def tokens(x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        entering: list[torch.Tensor] = []
        handle = first.register_forward_pre_hook(lambda module, args: entering.append(args[0]))
        try:
            final, intermediates = model.forward_intermediates(x, norm=False, output_fmt="NLC",
                                                                return_prefix_tokens=True)
        finally:
            handle.remove()
        layers = [entering[0]]
        for item in intermediates:
            if isinstance(item, (tuple, list)):  # (patch tokens, prefix tokens) when the model has prefix tokens
                patches, prefix = item
                layers.append(torch.cat([prefix, patches], dim=1))
            else:
                layers.append(item)
        return layers, final

    return tokens


def timm_input_side(model: nn.Module) -> int | None:
    """The side a timm ViT was built for when it takes only that size; ``None`` when it takes any
    size (``dynamic_img_size``, or a patch embedding without a strict size)."""
    embed = getattr(model, "patch_embed", None)
    if getattr(model, "dynamic_img_size", False) or embed is None or not getattr(embed, "strict_img_size", True):
        return None
    size = getattr(embed, "img_size", None)
    if size is None:
        return None
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h != w:
        raise ConfigError("model", type(model).__name__, f"a model for square images (it takes {h} x {w})")
    return int(h)


def timm_data_config(model: nn.Module) -> dict[str, Any]:
    """The model's own data configuration (timm's ``resolve_model_data_config``) with the input side
    the model was actually built for (timm reports its pretrained configuration's side, 224 for
    ``vit_tiny_patch16_224`` even when it was built with ``img_size=32``)."""
    from timm.data import resolve_model_data_config

    config = dict(resolve_model_data_config(model))
    side = timm_input_side(model)
    if side is not None:
        config["input_size"] = (config["input_size"][0], side, side)
    return config


def describe_timm(model: nn.Module) -> dict[str, Any]:
    """The shape of a timm ViT: depth, width, patch size, heads, MLP ratio, prefix and register
    tokens, pooling (``cls`` for timm's ``token`` pool, else ``mean``)."""
    width = int(getattr(model, "embed_dim", getattr(model, "num_features", 0)))
    block = model.blocks[0]
    heads = getattr(getattr(block, "attn", None), "num_heads", None)
    fc1 = getattr(getattr(block, "mlp", None), "fc1", None)
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    return {
        "depth": len(model.blocks), "width": width,
        "patch_size": None if patch is None else int(patch if isinstance(patch, int) else patch[0]),
        "heads": None if heads is None else int(heads),
        "mlp_ratio": float(fc1.out_features / width) if isinstance(fc1, nn.Linear) and width else None,
        "num_prefix": int(model.num_prefix_tokens), "registers": int(getattr(model, "num_reg_tokens", 0) or 0),
        "pool": "cls" if getattr(model, "global_pool", "token") == "token" else "mean",
    }


def create_timm(name: str, pretrained: bool = False, model_kwargs: dict[str, Any] | None = None) -> nn.Module:
    """``timm.create_model(name, pretrained=..., **model_kwargs)`` with errors that say what to do.

    ``pretrained=True`` downloads the weights (the Hugging Face hub); on a machine without internet
    access load a local file with :func:`load_weights` instead.
    """
    import timm

    if not isinstance(name, str) or not timm.is_model(name):
        raise ConfigError("timm", name, "a timm model name, e.g. vit_tiny_patch16_224 or vit_small_patch16_224.dino "
                                        "(timm.list_models('vit_*') lists the Vision Transformers)")
    kwargs = dict(model_kwargs or {})
    try:
        model = timm.create_model(name, pretrained=bool(pretrained), **kwargs)
    except TypeError as exc:
        raise ConfigError("model_kwargs", kwargs, f"arguments {name} takes ({exc})") from None
    except (OSError, RuntimeError, ValueError) as exc:
        if not pretrained:
            raise
        raise WorkbenchError(
            f"could not load the pretrained weights of {name} ({type(exc).__name__}: {str(exc)[:200]}); "
            "downloading them needs internet access. Offline: load a local weights file with checkpoint=FILE "
            "(--checkpoint FILE), or analyse the randomly initialised model (pretrained=False)") from None
    check_timm_vit(model, name)
    return model


# ---- weights ---------------------------------------------------------------------------------


def is_workbench_checkpoint(state: Any) -> bool:
    """Whether a loaded checkpoint is a workbench run's (Lightning's format with the run's config)."""
    return isinstance(state, dict) and isinstance(state.get("hyper_parameters"), dict) \
        and "config" in state["hyper_parameters"] and "data_info" in state["hyper_parameters"]


def read_checkpoint(path: str | Path) -> Any:
    """The contents of a weights file: ``torch.load(weights_only=True)``, or safetensors for a
    ``.safetensors`` file. Raises :class:`ConfigError` for a missing file and :class:`DataError`
    for one that cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("checkpoint", str(path), "an existing weights file: a state dict saved with torch.save "
                                                   "(.pt, .pth, .bin, .ckpt) or a .safetensors file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated zip, a foreign format, pickled code: all unreadable here
        raise DataError(f"{path} could not be read as weights ({type(exc).__name__}: {str(exc)[:200]}); "
                        "it may be truncated or not a weights file: save it with torch.save(model.state_dict(), "
                        "path) or safetensors, and load it from a complete copy") from None


def state_dict_of(state: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """The tensor dictionary inside a loaded checkpoint: the dictionary itself, or its ``state_dict``,
    ``model`` or ``module`` entry (nested wrappers included)."""
    for _ in range(3):
        if isinstance(state, dict) and state and all(torch.is_tensor(v) for v in state.values()):
            return dict(state)
        inner = next((state[k] for k in ("state_dict", "model", "module") if isinstance(state, dict)
                      and isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    raise DataError(f"{path} holds no state dict (a mapping of parameter names to tensors, possibly under "
                    "'state_dict' or 'model'); save one with torch.save(model.state_dict(), path)")


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a local weights file into ``model``, every parameter and buffer (strict), and return it.

    The state dict may sit under ``state_dict`` / ``model``; DDP's and ``torch.compile``'s name
    prefixes are removed; for a timm model, the family's ``checkpoint_filter_fn`` converts original
    formats and resamples position embeddings to the model's size. Keys that do not match, or
    shapes that differ, raise :class:`ConfigError` naming a few of them.
    """
    state = read_checkpoint(path)
    if is_workbench_checkpoint(state):
        raise ConfigError("checkpoint", str(path), "weights of the model given; this is a workbench run's checkpoint: "
                                                   "analyse it without a model (checkpoint=FILE alone, or run=RUN_DIR)")
    state = state_dict_of(state, path)
    state = {_strip_prefixes(k): v for k, v in state.items()}
    family = sys.modules.get(type(model).__module__)
    filter_fn = getattr(family, "checkpoint_filter_fn", None) if type(model).__module__.startswith("timm.") else None
    if filter_fn is not None:
        state = filter_fn(state, model)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that differ
        raise ConfigError("checkpoint", str(path), f"weights shaped like this model's ({str(exc)[:300]}); was it saved "
                                                   "from the same model built with the same arguments?") from None
    if missing or unexpected:
        head = getattr(model, "pretrained_cfg", {}).get("classifier") if hasattr(model, "pretrained_cfg") else None
        hint = (" The file has no classifier head: build the model without one, model_kwargs={'num_classes': 0} "
                "(--model-arg num_classes=0)." if head and not unexpected and
                all(k.startswith(f"{head}.") for k in missing) else "")
        raise ConfigError("checkpoint", str(path), f"weights of this model: {len(missing)} missing keys "
                          f"{_few(missing)} and {len(unexpected)} unexpected keys {_few(unexpected)}; was it saved "
                          f"from the same model (name and arguments)?{hint}")
    return model


def _strip_prefixes(key: str) -> str:
    for prefix in ("module.", "_orig_mod."):  # DDP and torch.compile wrappers, in either order
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key


def _few(keys: Sequence[str]) -> str:
    keys = list(keys)
    return "(" + ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "") + ")" if keys else ""


# ---- the workbench's ViT and any other module ------------------------------------------------


def workbench_tokens(vit: VisionTransformer) -> TokenFn:
    """Every layer's tokens of the workbench's ViT: its own :class:`ViTOutput` (layer 0 = patch
    embedding with positions, the last layer after the final norm)."""
    def tokens(x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        out = vit(x)
        return out.layers, out.final

    return tokens


def adapter_tokens(adapter: Callable[[torch.Tensor], Sequence[torch.Tensor]], num_prefix: int) -> TokenFn:
    """Wrap a user's ``images -> [layer 0 tokens, ..., last layer tokens]`` function, checking what it
    returns (a non-empty list of ``B x T x D`` tensors with more than ``num_prefix`` tokens)."""
    if not callable(adapter):
        raise ConfigError("adapter", adapter, "a function: images B x C x H x W -> list of per-layer B x T x D tokens")

    def tokens(x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        layers = adapter(x)
        if isinstance(layers, torch.Tensor) or not isinstance(layers, (list, tuple)) or len(layers) < 2:
            raise ConfigError("adapter", type(layers).__name__,
                              "a function returning a list of at least two B x T x D tensors (layer 0 first)")
        for i, t in enumerate(layers):
            if not torch.is_tensor(t) or t.ndim != 3 or t.shape[0] != x.shape[0] or t.shape[1] <= num_prefix:
                shape = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
                raise ConfigError("adapter", f"layer {i}: {shape}",
                                  f"B x T x D tokens with B = {x.shape[0]} images and more than num_prefix = "
                                  f"{num_prefix} tokens (prefix tokens first, then the patch tokens)")
        return list(layers), layers[-1]

    return tokens
