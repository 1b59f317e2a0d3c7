"""Parts (a) precision, (b) compile, (c) throughput, (d) sync and (f) notebooks of ``gpucheck``
(:mod:`workbench.bench.gpucheck`). Each takes the :class:`Check` and its part's budget and returns
``{"items", "settings", "tolerance", "substitutes", "columns", "cells"}``."""

from __future__ import annotations

import contextlib
import math
import statistics

import torch

from .gpucheck_runs import (
    DRY_PEAK_TFLOPS,
    LOSS_TOLERANCE,
    Check,
    LossRecorder,
    PartBudget,
    SyncWatch,
    _fmt,
    _item,
    _run_items,
    compare_losses,
    describe,
    dynamo_eager_backend,
    is_cuda_sync_error,
)

def _percent(value: float | None) -> str:
    return _fmt(100 * value if value is not None else None, ".2f", "%")


def tolerance_text(reference: str) -> str:
    """:data:`LOSS_TOLERANCE` in words."""
    t = LOSS_TOLERANCE
    return (f"losses finite; first step within {t['first']:.0%} and the mean of the last {t['tail']} steps within "
            f"{t['mean']:.0%} of {reference} (or of {t['floor']} x its first loss when larger)")


# ---- (a) precision and (d) sync ----------------------------------------------------------------


def _steps_overrides(steps: int) -> list[str]:
    # log and monitor only at the last step: every earlier step writes no log (and can be watched)
    return [f"trainer.max_steps={steps}", f"trainer.log_every_n_steps={steps}",
            f"diagnostics.monitor_every_n_steps={steps}", "seed=0"]


def _watched_run(check: Check, preset: str, overrides: list[str], steps: int,
                 extra: Sequence[Callback] = ()) -> tuple[dict, Any]:
    """One run with the sync watch on its first ``sync_steps`` steps: (the sync result, the run or
    None when CUDA's detector stopped it)."""
    watch = SyncWatch(check.cuda, check.sizes.sync_steps, steps)
    losses = LossRecorder()
    run = None
    try:
        with watch:
            run = check.fit(preset, overrides, [*extra, losses, *watch.callbacks])
    except Exception as exc:
        if not (check.cuda and is_cuda_sync_error(exc)):
            raise
        step = watch.debug.step if watch.debug is not None else None
        return {"status": "fail", "watched": watch.watched(0), "step": step, "found": [describe(exc)],
                "mechanism": watch.mechanism}, None
    found = watch.found()
    ran = len(losses.losses())
    result = {"status": "fail" if found else "ok", "watched": watch.watched(ran), "found": found[:20],
              "mechanism": watch.mechanism}
    return result, (run, losses)


def part_precision(check: Check, budget: PartBudget) -> dict:
    steps = check.sizes.precision_steps
    overrides = [*check.sizes.base, *_steps_overrides(steps)]

    def one(preset: str) -> dict:
        reference = LossRecorder()
        check.fit(preset, [*overrides, "trainer.precision=32-true"], [reference])
        sync, done = _watched_run(check, preset, [*overrides, "trainer.precision=bf16-mixed"], steps)
        check.sync[preset] = sync
        if done is None:  # CUDA's detector stopped the run: train again unwatched for the comparison
            bf16 = LossRecorder()
            check.fit(preset, [*overrides, "trainer.precision=bf16-mixed"], [bf16])
        else:
            bf16 = done[1]
        c = compare_losses(reference.losses(), bf16.losses())
        return _item(preset, "ok" if c["ok"] else "fail", **c)

    items = _run_items(budget, check.presets, one, check.log)
    return {
        "items": items,
        "settings": {"steps": steps, "overrides": overrides, "seed": 0},
        "tolerance": tolerance_text("the 32-true run"),
        "substitutes": [] if check.cuda else ["bf16-mixed runs as CPU autocast (bfloat16)"],
        "columns": ["first step diff", "32-true (last mean)", "bf16-mixed (last mean)", "mean diff",
                    "largest step diff"],
        "cells": lambda i: [_percent(i.get("first_rel")), _fmt(i.get("mean_ref"), ".4g"),
                            _fmt(i.get("mean_other"), ".4g"),
                            _percent(i.get("mean_rel")),
                            _percent(i.get("step_rel")) + (f" (step {i['worst_step']})" if i.get("step_rel") is not None
                                                           else "")],
    }


def part_sync(check: Check, budget: PartBudget) -> dict:
    until = check.sizes.sync_steps
    steps = until + 1  # the last step is the one logging step
    overrides = [*check.sizes.base, *_steps_overrides(steps), "trainer.precision=bf16-mixed"]

    def one(preset: str) -> dict:
        if preset in check.sync:
            result, source = check.sync[preset], "part (a)'s bf16-mixed run"
        else:
            result, _ = _watched_run(check, preset, overrides, steps)
            source = "its own bf16-mixed run"
        return _item(preset, result["status"], source=source, **{k: v for k, v in result.items() if k != "status"})

    items = _run_items(budget, check.presets, one, check.log)
    return {
        "items": items,
        "settings": {"watched_steps": until},
        "tolerance": "no synchronising call on any watched step",
        "substitutes": [] if check.cuda else ["HostSyncRecorder (synchronising ops recorded by name) instead of "
                                              "CUDA's sync debug mode"],
        "columns": ["steps watched", "how", "found"],
        "cells": lambda i: [str(i.get("watched", "-")), i.get("mechanism", "-"),
                            "; ".join(i.get("found", [])[:2]) or "none"],
    }


# ---- (b) compile -------------------------------------------------------------------------------


def part_compile(check: Check, budget: PartBudget) -> dict:
    from .step import StepTimer, step_intervals

    s = check.sizes
    total = s.compile_warmup + s.compile_steps + 1
    overrides = [*s.base, *_steps_overrides(total)]

    def side(preset: str, compiled: bool) -> dict:
        import torch._dynamo

        timer, losses = StepTimer(), LossRecorder()
        torch._dynamo.reset()  # every run compiles afresh (and never meets the recompile limit)
        backend = contextlib.nullcontext() if check.cuda else dynamo_eager_backend()
        with backend:
            run = check.fit(preset, [*overrides, f"trainer.compile={str(compiled).lower()}"], [timer, losses])
        steady = step_intervals(timer.starts, s.compile_warmup)
        first = step_intervals(timer.starts, 0)[0]
        median = statistics.median(steady)
        return {"median_ms": 1000 * median, "first_ms": 1000 * first, "wall_s": run.summary["wall_s"],
                "losses": losses.losses()}

    def one(preset: str) -> dict:
        eager, compiled = side(preset, False), side(preset, True)
        c = compare_losses(eager["losses"], compiled["losses"])
        first_excess = (compiled["first_ms"] - compiled["median_ms"]) - (eager["first_ms"] - eager["median_ms"])
        return _item(preset, "ok" if c["ok"] else "fail", **c,
                     eager_ms=eager["median_ms"], compiled_ms=compiled["median_ms"],
                     step_ratio=compiled["median_ms"] / eager["median_ms"],
                     compile_first_step_s=first_excess / 1000, compile_run_s=compiled["wall_s"] - eager["wall_s"])

    items = _run_items(budget, s.compile_presets, one, check.log)
    return {
        "items": items,
        "settings": {"steps": s.compile_steps, "warmup": s.compile_warmup, "overrides": overrides},
        "tolerance": tolerance_text("the eager run") + "; the step-time ratio and compile times are reported",
        "substitutes": [] if check.cuda else ["torch.compile with dynamo's eager backend (no code generation)"],
        "columns": ["eager ms/step", "compiled ms/step", "ratio", "compile: first step", "compile: whole run",
                    "loss: first step diff", "loss: mean diff"],
        "cells": lambda i: [_fmt(i.get("eager_ms"), ".1f"), _fmt(i.get("compiled_ms"), ".1f"),
                            _fmt(i.get("step_ratio"), ".2f"), _fmt(i.get("compile_first_step_s"), ".1f", " s"),
                            _fmt(i.get("compile_run_s"), ".1f", " s"), _percent(i.get("first_rel")),
                            _percent(i.get("mean_rel"))],
    }


# ---- (c) throughput ----------------------------------------------------------------------------


def part_throughput(check: Check, budget: PartBudget) -> dict:
    from .step import StepTimer, step_intervals
    from .throughput import FlopProbe, PeakMemory, peak_tflops

    s = check.sizes
    total = s.throughput_warmup + s.throughput_steps + 1
    # one dataset for every run: enough training images for the largest batch's steps in one epoch
    # (train = 0.9 x 0.9 of the images)
    images = int(math.ceil(max(s.throughput_batches) * (total + 2) / 0.81 / 100.0) * 100)
    device_name = torch.cuda.get_device_name(check.device) if check.cuda else "cpu"
    peak = check.peak_tflops or (peak_tflops(device_name) if check.cuda else DRY_PEAK_TFLOPS)
    peak_source = ("--peak-tflops" if check.peak_tflops else f"table entry for {device_name!r}" if check.cuda and peak
                   else "CPU substitute" if not check.cuda else "unknown device: pass --peak-tflops")
    pairs = [f"{preset} @ {batch}" for preset in s.throughput_presets for batch in s.throughput_batches]

    def one(name: str) -> dict:
        preset, batch = name.split(" @ ")
        batch = int(batch)
        timer, probe, memory = StepTimer(), FlopProbe(step=s.throughput_warmup - 1), PeakMemory()
        overrides = [f"data.shapes.num_images={images}", f"data.batch_size={batch}", *s.throughput_model,
                     "diagnostics.enabled=false", *_steps_overrides(total)]
        check.fit(preset, overrides, [timer, probe, memory])
        median = statistics.median(step_intervals(timer.starts, s.throughput_warmup))
        per_s = batch / median
        model = probe.model_flops / batch if probe.model_flops else None
        counted = probe.counted_flops / batch if probe.counted_flops else None
        achieved = model * per_s / 1e12 if model else None
        return _item(name, "ok", preset=preset, batch=batch, ms_per_step=1000 * median, images_per_s=per_s,
                     model_gflop_per_image=model / 1e9 if model else None,
                     counted_gflop_per_image=counted / 1e9 if counted else None,
                     achieved_tflops=achieved, peak_fraction=achieved / peak if achieved and peak else None,
                     peak_memory_mib=memory.bytes / 2**20 if memory.bytes else None, memory_kind=memory.kind,
                     backbone_forwards=probe.forwards)

    items = _run_items(budget, pairs, one, check.log)
    return {
        "items": items,
        "settings": {"model": list(s.throughput_model), "images": images, "steps": s.throughput_steps,
                     "warmup": s.throughput_warmup, "device": device_name, "peak_tflops": peak,
                     "peak_source": peak_source},
        "tolerance": "reported, not judged",
        "substitutes": [] if check.cuda else ["peak memory: the process's peak resident set (ru_maxrss)",
                                              f"peak FLOP rate: nominal {DRY_PEAK_TFLOPS} TFLOP/s"],
        "notes": [f"peak: {_fmt(peak, '.0f')} TFLOP/s bf16 ({peak_source}); fraction = backbone model FLOPs per "
                  "image x images/s / peak (formula in workbench/bench/throughput.py and the README)"],
        "columns": ["ms/step", "images/s", "model GFLOP/image", "counted GFLOP/image", "TFLOP/s", "of peak",
                    "peak memory"],
        "cells": lambda i: [_fmt(i.get("ms_per_step"), ".1f"), _fmt(i.get("images_per_s"), ",.0f"),
                            _fmt(i.get("model_gflop_per_image"), ".3g"), _fmt(i.get("counted_gflop_per_image"), ".3g"),
                            _fmt(i.get("achieved_tflops"), ".3g"),
                            _fmt(100 * i["peak_fraction"] if i.get("peak_fraction") else None, ".1f", "%"),
                            _fmt(i.get("peak_memory_mib"), ",.0f", " MiB")],
    }


# ---- (f) notebooks ----------------------------------------------------------------------------


def part_notebooks(check: Check, budget: PartBudget) -> dict:
    from .notebook_scales import cifar10_present, notebook_runs, write_synthetic_cifar10

    s = check.sizes
    real = None if check.dry_run else cifar10_present(check.data_dir)
    root = real.parent if real is not None and real.name == "cifar-10-batches-py" else real
    if root is None:
        root = write_synthetic_cifar10(check.work / "cifar", per_batch=s.cifar_per_batch)
        source = (f"random images in CIFAR-10's format ({5 * s.cifar_per_batch} training, {s.cifar_per_batch} test): "
                  + ("the dry run never reads real data" if check.dry_run else f"no CIFAR-10 under {check.data_dir}"))
    else:
        source = f"CIFAR-10 from {real}"
    extra = {"trainer.max_steps": s.notebook_steps, "trainer.enable_progress_bar": False, "seed": 0,
             **dict(s.notebook_extra)}
    runs = notebook_runs(root, extra)
    # First the first run of each notebook at each scale, as the notebook trains it (diagnostics
    # included), `gpu` scales before the others; then the other runs without diagnostics (part (e)
    # checks those), so a short budget still starts every notebook.
    firsts, seen = [], set()
    for r in sorted(runs, key=lambda r: r.scale != "gpu"):
        if (r.notebook, r.scale) not in seen:
            seen.add((r.notebook, r.scale))
            firsts.append(r)
    order = firsts + sorted((r for r in runs if r not in firsts), key=lambda r: r.scale != "gpu")
    by_name = {r.name: r for r in order}
    # the dry run trains the first run of each notebook at its `gpu` scale (the very first with its
    # diagnostics); the others' configs are built and validated
    trains = {r.name for r in firsts if r.scale == "gpu"} if check.dry_run else set(by_name)
    with_diagnostics = [firsts[0]] if check.dry_run else firsts

    def one(name: str) -> dict:
        from ..presets import make_config

        r = by_name[name]
        overrides = dict(r.overrides)
        diagnostics = r in with_diagnostics
        if not diagnostics:
            overrides["diagnostics.enabled"] = False
        if name not in trains:
            make_config(r.preset, overrides)
            return _item(name, "ok", preset=r.preset, steps=None, diagnostics=False, trained=False)
        run = check.fit(r.preset, overrides)
        steps = run.summary.get("steps")
        ok = run.summary.get("status") == "completed" and steps == s.notebook_steps
        return _item(name, "ok" if ok else "fail", preset=r.preset, steps=steps, diagnostics=diagnostics, trained=True,
                     wall_s=run.summary.get("wall_s"), diagnostics_s=run.summary.get("diagnostics_s"))

    items = _run_items(budget, list(by_name), one, check.log)
    return {
        "items": items,
        "settings": {"data": source, "steps": s.notebook_steps, "extra": extra},
        "tolerance": f"the run completes its {s.notebook_steps} steps",
        "substitutes": ([] if check.cuda else ["toy model sizes instead of the notebooks'; only each notebook's "
                                               "first run at its `gpu` scale trains (the first of all with "
                                               "diagnostics), the other runs' configs are built and validated"])
        + ([] if real is not None else ["random images in CIFAR-10's format"]),
        "notes": [f"data: {source}"],
        "columns": ["preset", "steps", "diagnostics", "wall s"],
        "cells": lambda i: [i.get("preset", "-"), str(i["steps"]) if i.get("trained") else "config only",
                            "yes" if i.get("diagnostics") else "no", _fmt(i.get("wall_s"), ".1f")],
    }
