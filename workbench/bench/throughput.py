"""Training throughput, model FLOPs and peak memory of ``wb.fit`` runs (part (c) of ``gpucheck``).

Model FLOPs of the backbone (a multiply-add counts 2), for one forward of ``B`` images through a ViT
of width ``d``, depth ``L``, MLP ratio ``r``, patch ``p`` on ``C`` channels, with ``P`` patches cut
from each image and ``T`` tokens per sequence (kept patches plus CLS and registers):

    patch embedding   2 * P * C * p^2 * d
    per block         (8 + 4 r) * T * d^2   (q, k, v and output projections 8 T d^2; MLP 4 r T d^2)
                      + 4 * T^2 * d         (scores Q K^T and their product with V)

so ``B * [2 P C p^2 d + L ((8 + 4 r) T d^2 + 4 T^2 d)]``, i.e. ``24 N d^2 + 4 N^2 d`` per token-layer
term at ``r = 4``. Training counts 3 x the forward of every forward that back-propagates (the backward
pass costs twice the forward) and 1 x for the others (the EMA teacher's). Heads, decoders, norms and
the loss are left out. :class:`BackboneFlops` adds this up for every backbone forward of a step, so
multi-crop (DINO) and masked encoders (MAE) are counted with the tokens they really process.

:class:`FlopProbe` also counts the executed FLOPs of the same step with
``torch.utils.flop_counter.FlopCounterMode`` (every matmul, convolution and attention op, heads and
decoders included, attention backward as torch counts it); the model-FLOP figure above is the one
the fraction of the device's peak is computed from.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

#: Dense bf16 tensor-core peak (TFLOP/s, no sparsity) by device name, most specific first: the
#: first entry whose key is contained in ``torch.cuda.get_device_name()`` applies.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM5 (HBM3)
    ("GH200", 989.0),
    ("H200 NVL", 835.0),
    ("H200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("RTX 4090", 165.0),
)


def peak_tflops(device_name: str) -> float | None:
    """The device's dense bf16 peak from :data:`PEAK_BF16_TFLOPS`, or None for a device not listed.
    ``peak_tflops("NVIDIA H100 80GB HBM3")`` is 989.0; ``peak_tflops("NVIDIA H100 PCIe")`` 756.0."""
    for key, value in PEAK_BF16_TFLOPS:
        if key in device_name:
            return value
    return None


def vit_forward_flops(batch: int, patches: int, tokens: int, width: int, depth: int, mlp_ratio: float = 4.0,
                      channels: int = 3, patch_size: int = 4) -> float:
    """Model FLOPs of one ViT forward (module docstring): ``batch * [2 patches channels patch_size^2
    width + depth ((8 + 4 mlp_ratio) tokens width^2 + 4 tokens^2 width)]``. ``patches``: patches
    embedded per image; ``tokens``: sequence length through the blocks."""
    embed = 2.0 * patches * channels * patch_size**2 * width
    block = (8.0 + 4.0 * mlp_ratio) * tokens * width**2 + 4.0 * tokens**2 * width
    return float(batch) * (embed + depth * block)


class BackboneFlops:
    """Adds up :func:`vit_forward_flops` over every forward of the given backbones while attached:
    3 x for a forward under autograd with trainable weights (forward and backward), 1 x otherwise.
    ``attach(modules)`` registers forward hooks on every ``VisionTransformer`` among them;
    ``detach()`` removes them."""

    def __init__(self) -> None:
        self.total = 0.0
        self.forwards: list[dict[str, Any]] = []
        self._handles: list[Any] = []

    def attach(self, root: torch.nn.Module) -> "BackboneFlops":
        from ..models.vit import VisionTransformer

        for module in root.modules():
            if isinstance(module, VisionTransformer):
                self._handles.append(module.register_forward_hook(self._hook))
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, module, args, output) -> None:
        images = args[0]
        b, c, h, w = images.shape
        p = module.patch_size
        tokens = output.layers[0].shape[1]
        ratio = module.blocks[0].mlp.fc1.out_features / module.width if len(module.blocks) else 4.0
        trains = torch.is_grad_enabled() and any(q.requires_grad for q in module.parameters())
        flops = vit_forward_flops(b, (h // p) * (w // p), tokens, module.width, module.depth, ratio, c, p)
        self.forwards.append({"batch": b, "tokens": tokens, "backward": trains})
        self.total += (3.0 if trains else 1.0) * flops


def _sdpa_cpu_flops(query, key, value, *args, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


def _sdpa_cpu_backward_flops(grad_out, query, key, value, *args, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad_out, query, key, value)


def flop_counter() -> Any:
    """``FlopCounterMode`` without printing, that also counts the CPU attention kernels (which torch
    leaves out of its table) with torch's own attention formulas."""
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    mapping = {}
    for name, fn in (("_scaled_dot_product_flash_attention_for_cpu", _sdpa_cpu_flops),
                     ("_scaled_dot_product_flash_attention_for_cpu_backward", _sdpa_cpu_backward_flops)):
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = fn
    return FlopCounterMode(display=False, custom_mapping=mapping)


class FlopProbe(Callback):
    """Counts one training step (``step``, 0-based): the backbone's model FLOPs
    (:class:`BackboneFlops`) and the executed FLOPs (:func:`flop_counter`), and the batch size.
    Count the step outside the timed ones: the counters slow it down."""

    def __init__(self, step: int = 1):
        self.step = step
        self.model_flops: float | None = None
        self.counted_flops: float | None = None
        self.batch: int | None = None
        self.forwards: list[dict[str, Any]] = []
        self._backbone: BackboneFlops | None = None
        self._counter = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step and self._counter is None:
            self.batch = int(batch["images"].shape[0])
            self._backbone = BackboneFlops().attach(pl_module)
            self._counter = flop_counter()
            self._counter.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._finish()

    def on_exception(self, trainer, pl_module, exception):
        self._finish()

    def _finish(self) -> None:
        if self._counter is None:
            return
        counter, backbone = self._counter, self._backbone
        self._counter, self._backbone = None, None
        counter.__exit__(None, None, None)
        backbone.detach()
        self.counted_flops = float(counter.get_total_flops())
        self.model_flops = backbone.total
        self.forwards = backbone.forwards


class PeakMemory(Callback):
    """Peak memory of the training steps. On CUDA: ``torch.cuda.max_memory_allocated`` after
    ``reset_peak_memory_stats`` at the start of training (the tensors PyTorch allocated: weights,
    optimiser state, activations, workspaces). Elsewhere: the process's peak resident set size
    (``ru_maxrss``), which cannot be reset and so includes everything since the process started.
    ``kind`` says which."""

    def __init__(self) -> None:
        self.bytes: int | None = None
        self.kind = ""

    def on_train_start(self, trainer, pl_module):
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_end(self, trainer, pl_module):
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
            self.bytes = int(torch.cuda.max_memory_allocated(pl_module.device))
            self.kind = "torch.cuda.max_memory_allocated"
        else:
            self.bytes = process_peak_rss()
            self.kind = "process peak RSS (ru_maxrss; CPU substitute, not resettable)"


def process_peak_rss() -> int:
    """Peak resident set size of this process in bytes (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
