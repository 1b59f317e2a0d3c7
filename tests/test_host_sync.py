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
  Lightning's hooks and logging), no op of :data:`~workbench.bench.host_sync.SYNC_OPS` is
  dispatched and none of the Python calls in :data:`~workbench.bench.host_sync.PY_CALLS` is made
  (the recorder and the CUDA callback live in :mod:`workbench.bench.host_sync`, which
  ``python -m workbench gpucheck`` uses too).
* Excluded: reads made by ``torch.optim`` itself (non-fused AdamW reads its step counters, which
  live on the host even for CUDA parameters; the fused AdamW used on CUDA keeps them on the
  device), and steps that write logs (Lightning turns the logged tensors into numbers there; the
  module checks for non-finite losses and runs its monitors).
* Not covered: a ``.to(device)`` of a host tensor (a no-op on the CPU, so invisible here) and
  syncs inside CUDA kernels' own implementations; ``test_no_sync_on_cuda`` checks those with
  ``torch.cuda.set_sync_debug_mode("error")`` when a GPU is present.
"""

from __future__ import annotations

import pytest
import torch

import workbench as wb
from workbench.bench.host_sync import CudaSyncDebug, HostSyncRecorder, StepWindows, is_logging_step
from workbench.masks import block_masks
from workbench.randomness import make_generator

aten = torch.ops.aten


LOG_EVERY = 4
STEPS = 9  # logging steps: 3 and 7
TINY = [
    "data.shapes.num_images=400", "data.batch_size=16", "model.patch_size=8", "model.width=16", "model.depth=2",
    "model.heads=2", f"trainer.max_steps={STEPS}", f"trainer.log_every_n_steps={LOG_EVERY}", "views.local_crops=2",
    "diagnostics.enabled=false", f"diagnostics.monitor_every_n_steps={LOG_EVERY}",
]


def _is_logging_step(step: int) -> bool:
    return is_logging_step(step, LOG_EVERY)


@pytest.mark.parametrize("preset", list(wb.PRESETS))
def test_no_host_sync_between_logging_steps(preset, tmp_path):
    recorder = HostSyncRecorder()
    with recorder:
        run = wb.fit(preset=preset, overrides=TINY + [f"runs_dir={tmp_path}"], cache_dir=tmp_path / "data",
                     callbacks=[StepWindows(recorder)])
    assert run.summary["steps"] == STEPS
    bad = [s for s in recorder.syncs if s.step is not None and not _is_logging_step(s.step)]
    assert not bad, "host syncs between logging steps:\n" + "\n".join(
        f"  step {s.step}: {s.what} at {s.where}" for s in bad[:20])
    # The recorder is live inside the window: on logging steps Lightning reads the logged values.
    assert any(s.step == LOG_EVERY - 1 and s.what == str(aten._local_scalar_dense.default) for s in recorder.syncs)


def test_the_recorder_sees_every_kind_of_sync():
    x = torch.arange(6.0)
    recorder = HostSyncRecorder()
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


def test_block_masks_read_nothing_back():
    block_masks(8, 8, make_generator(0))  # plans the (cached) sizes on the host first
    recorder = HostSyncRecorder()
    with recorder:
        recorder.step = 0
        block_masks(256, 8, make_generator(1))
    assert not recorder.syncs, recorder.syncs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("preset", ["supervised", "dino", "ijepa", "lejepa", "mae", "coherent"])
def test_no_sync_on_cuda(preset, tmp_path):
    """On a GPU, CUDA's own sync detector raises on any synchronising call between logging steps."""
    try:
        run = wb.fit(preset=preset, overrides=TINY + [f"runs_dir={tmp_path}", "trainer.accelerator=gpu"],
                     cache_dir=tmp_path / "data", callbacks=[CudaSyncDebug()])
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
