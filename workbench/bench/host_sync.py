"""Host synchronisation inside training steps: a recorder that works on any device, and CUDA's own.

On a GPU, reading a number back from the device (``.item()``, ``float(t)``, ``if t:``, ``.tolist()``,
``.cpu()``), an op whose output size depends on the data (``nonzero``, boolean-mask indexing,
``unique``), a linear-algebra op that checks its result for errors (SVD, eigh) and a blocking copy
of Python data to the device (``torch.tensor(data, device=...)``) all stall the host until the
device has caught up.

* :class:`HostSyncRecorder` records every such operation by its *name*, whatever the device, so a
  CPU-only run proves that none of them is issued where it should not be. Excluded: reads made by
  ``torch.optim`` itself (non-fused AdamW reads its step counters, which live on the host even for
  CUDA parameters; the fused AdamW used on CUDA keeps them on the device). Not seen: a
  ``.to(device)`` of a host tensor (a no-op on the CPU) and syncs inside CUDA kernels' own
  implementations -- :class:`CudaSyncDebug` covers those on a GPU.
* :class:`StepWindows` points a recorder at the current training step, from one batch start to the
  next (views, forwards, objectives, backward, clipping, optimiser and scheduler step, EMA update,
  Lightning's hooks and logging); nothing is recorded during set-up, validation or epoch ends.
* :class:`CudaSyncDebug` switches ``torch.cuda.set_sync_debug_mode("error")`` on for every training
  step that writes no log, so CUDA itself raises at the first synchronising call.

A step writes logs when :func:`is_logging_step` holds (Lightning's rule, which
:meth:`WorkbenchModule.writes_logs` follows); on those steps Lightning turns the logged tensors into
numbers, the module checks for non-finite losses and runs its monitors, so they are exempt.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

import torch
from lightning.pytorch.callbacks import Callback
from torch.utils._python_dispatch import TorchDispatchMode

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


def is_logging_step(step: int, log_every_n_steps: int) -> bool:
    """Whether training step ``step`` (0-based) writes its logs: ``(step + 1) % log_every_n_steps == 0``.
    ``is_logging_step(3, 4)`` is True, ``is_logging_step(4, 4)`` is False."""
    return log_every_n_steps > 0 and (step + 1) % log_every_n_steps == 0


@dataclass
class Sync:
    """One recorded synchronising operation: the training step (``None``: outside any step), what
    it was (the op or Python call) and where (the innermost workbench / Lightning frames)."""

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
    (``None``: not recording) into ``syncs``.

    Use as a context manager: entering it patches the Python calls of :data:`PY_CALLS` (on
    ``torch`` and ``torch.Tensor``) and installs the dispatch mode; leaving it restores both.
    """

    def __init__(self) -> None:
        super().__init__()
        self.step: int | None = None
        self.syncs: list[Sync] = []
        self._patched: list[tuple[object, str, object]] = []

    def __enter__(self):
        for name in ("tolist", "numpy", "cpu", "new_tensor"):
            self._wrap(torch.Tensor, name, f"Tensor.{name}", always=True)
        self._wrap(torch, "tensor", "torch.tensor(device=)")
        self._wrap(torch, "as_tensor", "torch.as_tensor(device=)")
        try:
            return super().__enter__()
        except BaseException:
            self._restore()
            raise

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._restore()

    def _wrap(self, owner, name: str, label: str, always: bool = False) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            # torch.tensor(data) without a device makes a host tensor: only a copy *to a device*
            # (device=...) blocks.
            if self.step is not None and (always or kwargs.get("device") is not None):
                self.record(label)
            return original(*args, **kwargs)

        self._patched.append((owner, name, original))
        setattr(owner, name, wrapper)

    def _restore(self) -> None:
        while self._patched:
            owner, name, original = self._patched.pop()
            setattr(owner, name, original)

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

    def on_train_end(self, trainer, pl_module):
        self.recorder.step = None


class CudaSyncDebug(Callback):
    """``torch.cuda.set_sync_debug_mode("error")`` from the start of every training step that writes
    no log (:func:`is_logging_step`) to the next batch start; ``"default"`` on logging steps, at
    epoch ends and when training ends. ``step`` is the step being watched (``None``: none), so a
    caller that catches CUDA's error can name the step. ``until``: watch only steps below it."""

    def __init__(self, until: int | None = None):
        self.until = until
        self.step: int | None = None
        self.watched = 0

    def _set(self, mode: str) -> None:
        torch.cuda.set_sync_debug_mode(mode)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        step = trainer.global_step
        watch = not is_logging_step(step, trainer.log_every_n_steps) and (self.until is None or step < self.until)
        self.step = step if watch else None
        self.watched += int(watch)
        self._set("error" if watch else "default")

    def on_train_epoch_end(self, trainer, pl_module):
        self.step = None
        self._set("default")

    def on_train_end(self, trainer, pl_module):
        self.step = None
        self._set("default")

    def on_exception(self, trainer, pl_module, exception):
        # Lightning's clean-up after a failure copies to the host; ``step`` still names the culprit
        self._set("default")
