"""No host synchronisation inside a training step, except on the steps whose logs are written.

On a GPU, reading a number back from the device (``.item()``, ``float(t)``, ``if t:``, ``.tolist()``,
``.cpu()``), an op whose output size depends on the data (``nonzero``, boolean-mask indexing,
``unique``), a linear-algebra op that checks its result for errors (SVD, eigh) and a blocking copy
of Python data to the device (``torch.tensor(data, device=...)``) all stall the host until the
device has caught up. The tests below run real training (``wb.fit``) on the CPU and record every
such operation by its *name*, whatever the device, so they prove on a CPU-only machine that none
of them is issued between logging steps.

What they prove, precisely:

* For every preset, on every training step that is not a logging step (``(step + 1) %
  trainer.log_every_n_steps != 0``), from ``on_train_batch_start`` to the next batch (views,
  forwards, objectives, backward, gradient clipping, optimiser and scheduler step, EMA update,
  Lightning's hooks and logging), no op of :data:`SYNC_OPS` is dispatched and none of the Python
  calls in :data:`PY_CALLS` is made.
* Excluded: reads made by ``torch.optim`` itself (non-fused AdamW reads its step counters, which
  live on the host even for CUDA parameters; the fused AdamW used on CUDA keeps them on the
  device), and steps that write logs (Lightning turns the logged tensors into numbers there; the
  module checks for non-finite losses and runs its monitors).
* Not covered: a ``.to(device)`` of a host tensor (a no-op on the CPU, so invisible here) and
  syncs inside CUDA kernels' own implementations; ``test_no_sync_on_cuda`` checks those with
  ``torch.cuda.set_sync_debug_mode("error")`` when a GPU is present.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils._python_dispatch import TorchDispatchMode

import workbench as wb
from workbench.masks import block_masks
from workbench.randomness import make_generator

aten = torch.ops.aten

#: Dispatched ops that wait for the device: scalar reads, data-dependent output sizes, and
#: linear algebra that reads its error code back (torch documents the SVD / eigh syncs).
SYNC_OPS = {
    aten._local_scalar_dense.default,  # .item(), float(t), int(t), bool(t), if t:
    aten.is_nonzero.default,
    aten.equal.default,
    aten.nonzero.default,
    aten.masked_select.default,
    aten._unique2.default,
    aten.unique_consecutive.default,
    aten.unique_dim.default,
    aten.repeat_interleave.Tensor,
    aten._linalg_svd.default,
    aten._linalg_eigh.default,
    aten.linalg_eig.default,
}

#: Python-level calls that bypass the dispatcher on CPU tensors but copy to or from the host.
PY_CALLS = ("Tensor.tolist", "Tensor.numpy", "Tensor.cpu", "torch.tensor(device=)", "torch.as_tensor(device=)",
            "Tensor.new_tensor")


@dataclass
class Sync:
    step: int | None
    what: str
    where: str


def _caller() -> traceback.FrameSummary | None:
    """The innermost frame outside torch's internals and this file."""
    for frame in reversed(traceback.extract_stack()):
        name = frame.filename
        if name == __file__ or "/torch/_" in name or "/torch/utils/" in name:
            continue
        return frame
    return None


def _where() -> str:
    frames = [f for f in traceback.extract_stack() if f.filename != __file__
              and ("workbench" in f.filename or "lightning" in f.filename)]
    return " <- ".join(f"{f.filename.rsplit('/', 2)[-2]}/{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}"
                       for f in reversed(frames[-3:]))


class HostSyncRecorder(TorchDispatchMode):
    """Records every op of :data:`SYNC_OPS` and call of :data:`PY_CALLS` while ``step`` is set
    (``None``: not recording). Use as a context manager; the Python calls are patched with
    ``monkeypatch``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        super().__init__()
        self.step: int | None = None
        self.syncs: list[Sync] = []
        for name in ("tolist", "numpy", "cpu"):
            self._wrap(monkeypatch, torch.Tensor, name, f"Tensor.{name}", always=True)
        self._wrap(monkeypatch, torch.Tensor, "new_tensor", "Tensor.new_tensor", always=True)
        self._wrap(monkeypatch, torch, "tensor", "torch.tensor(device=)")
        self._wrap(monkeypatch, torch, "as_tensor", "torch.as_tensor(device=)")

    def _wrap(self, monkeypatch, owner, name, label, always=False):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            # torch.tensor(data) without a device makes a host tensor: only a copy *to a device*
            # (device=...) blocks.
            if self.step is not None and (always or kwargs.get("device") is not None):
                self.record(label)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    def record(self, what: str) -> None:
        caller = _caller()
        if caller is not None and "/torch/optim/" in caller.filename:
            return  # torch.optim's own step counters (see the module docstring)
        self.syncs.append(Sync(self.step, what, _where()))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.step is not None:
            if func in SYNC_OPS:
                self.record(str(func))
            elif func is aten.index.Tensor and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] if i is not None
            ):
                self.record("boolean-mask indexing")
        return func(*args, **(kwargs or {}))


class StepWindows(Callback):
    """Points the recorder at the current training step from one batch start to the next; nothing
    is recorded outside training batches (set-up, validation, epoch ends)."""

    def __init__(self, recorder: HostSyncRecorder):
        self.recorder = recorder

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.recorder.step = trainer.global_step

    def on_train_epoch_end(self, trainer, pl_module):
        self.recorder.step = None

    def on_validation_start(self, trainer, pl_module):
        self.recorder.step = None


LOG_EVERY = 4
STEPS = 9  # logging steps: 3 and 7
TINY = [
    "data.shapes.num_images=400", "data.batch_size=16", "model.patch_size=8", "model.width=16", "model.depth=2",
    "model.heads=2", f"trainer.max_steps={STEPS}", f"trainer.log_every_n_steps={LOG_EVERY}", "views.local_crops=2",
    "diagnostics.enabled=false", f"diagnostics.monitor_every_n_steps={LOG_EVERY}",
]


def _is_logging_step(step: int) -> bool:
    return (step + 1) % LOG_EVERY == 0


@pytest.mark.parametrize("preset", list(wb.PRESETS))
def test_no_host_sync_between_logging_steps(preset, tmp_path, monkeypatch):
    recorder = HostSyncRecorder(monkeypatch)
    with recorder:
        run = wb.fit(preset=preset, overrides=TINY + [f"runs_dir={tmp_path}"], cache_dir=tmp_path / "data",
                     callbacks=[StepWindows(recorder)])
    assert run.summary["steps"] == STEPS
    bad = [s for s in recorder.syncs if s.step is not None and not _is_logging_step(s.step)]
    assert not bad, "host syncs between logging steps:\n" + "\n".join(
        f"  step {s.step}: {s.what} at {s.where}" for s in bad[:20])
    # The recorder is live inside the window: on logging steps Lightning reads the logged values.
    assert any(s.step == LOG_EVERY - 1 and s.what == str(aten._local_scalar_dense.default) for s in recorder.syncs)


def test_the_recorder_sees_every_kind_of_sync(monkeypatch):
    x = torch.arange(6.0)
    recorder = HostSyncRecorder(monkeypatch)
    with recorder:
        recorder.step = 0
        x.sum().item()
        bool(x.any())
        x[x > 2]
        x.tolist()
        torch.tensor([1.0, 2.0], device=x.device)
        torch.linalg.svdvals(x.view(2, 3))
        recorder.step = None
        x.sum().item()  # outside the window: not recorded
    kinds = [s.what for s in recorder.syncs]
    assert kinds == [str(aten._local_scalar_dense.default), str(aten._local_scalar_dense.default),
                     "boolean-mask indexing", "Tensor.tolist", "torch.tensor(device=)",
                     str(aten._linalg_svd.default)], kinds


def test_block_masks_read_nothing_back(monkeypatch):
    block_masks(8, 8, make_generator(0))  # plans the (cached) sizes on the host first
    recorder = HostSyncRecorder(monkeypatch)
    with recorder:
        recorder.step = 0
        block_masks(256, 8, make_generator(1))
    assert not recorder.syncs, recorder.syncs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("preset", ["supervised", "dino", "ijepa", "lejepa", "mae", "coherent"])
def test_no_sync_on_cuda(preset, tmp_path):
    """On a GPU, CUDA's own sync detector raises on any synchronising call between logging steps."""

    class SyncDebug(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            torch.cuda.set_sync_debug_mode("default" if _is_logging_step(trainer.global_step) else "error")

        def on_train_epoch_end(self, trainer, pl_module):
            torch.cuda.set_sync_debug_mode("default")

        def on_train_end(self, trainer, pl_module):
            torch.cuda.set_sync_debug_mode("default")

    try:
        run = wb.fit(preset=preset, overrides=TINY + [f"runs_dir={tmp_path}", "trainer.accelerator=gpu"],
                     cache_dir=tmp_path / "data", callbacks=[SyncDebug()])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert run.summary["steps"] == STEPS


# ---- the GPU path's switches, checked on whatever machine runs the tests ------------------------


def test_bf16_autocast_only_on_cuda():
    from workbench.presets import make_config
    from workbench.training.fit import resolve_precision

    auto = make_config("supervised", TINY)
    assert resolve_precision(auto) == ("bf16-mixed" if torch.cuda.is_available() else "32-true")
    assert resolve_precision(make_config("supervised", [*TINY, "trainer.accelerator=cpu"])) == "32-true"
    assert resolve_precision(make_config("supervised", [*TINY, "trainer.precision=16-mixed"])) == "16-mixed"


def test_fused_adamw_only_for_cuda_parameters(tmp_path):
    run = wb.fit(preset="supervised", overrides=[*TINY, "trainer.max_steps=2", f"runs_dir={tmp_path}"],
                 cache_dir=tmp_path / "data")
    state = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
    groups = state["optimizer_states"][0]["param_groups"]
    assert run.summary["device"] == "cpu" and all(not g["fused"] for g in groups)


def test_compile_switch_compiles_the_backbone_only(tmp_path):
    from workbench.data.datamodule import TensorDataModule
    from workbench.presets import make_config
    from workbench.training.module import WorkbenchModule

    config = make_config("dino", [*TINY, "trainer.compile=true"])
    info = TensorDataModule(config.data, cache_dir=tmp_path / "data").prepare().info
    module = WorkbenchModule(config, info)
    assert module.backbone._compiled_call_impl is not None  # torch.compile, lazily: nothing runs yet
    assert module.teacher.model._compiled_call_impl is None  # the EMA copy was made before compiling
    plain = WorkbenchModule(make_config("dino", TINY), info)
    assert plain.backbone._compiled_call_impl is None
