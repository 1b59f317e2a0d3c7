"""Part (e) of ``gpucheck`` (:mod:`workbench.bench.gpucheck`): the diagnostics and the layouts on the
device against the CPU, on the same model and probe images."""

from __future__ import annotations

import copy
import math
import statistics
import time
from types import SimpleNamespace
from typing import Any, Callable

import torch

from .gpucheck_runs import Check, PartBudget, _fmt, _item, _run_items

#: Metric agreement on the same embeddings, device against CPU: ``|a - b| <= atol + rtol * |a|``.
#: Accuracies and probe scores come from iterative fits (L-BFGS) or votes whose float rounding
#: differs by device: a few test points may flip, so 0.02 (6 of the 300 test points of 1,000 probe
#: images). The rest are closed-form in float32 / float64 (spectra in float64): 1e-3 relative.
METRIC_TOLERANCE = {"score": (0.0, 0.02), "other": (1e-3, 1e-4)}
#: Metrics drawn from the device's random generator (different on CUDA and CPU): not compared.
RANDOM_METRICS = ("sigreg", "invariance", "alignment", "lidar")


def _metric_kind(name: str) -> str:
    return "score" if ("acc" in name or name.startswith("factor/") or name.endswith("/accuracy")) else "other"


def _agree(a: float, b: float, name: str) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    rtol, atol = METRIC_TOLERANCE[_metric_kind(name)]
    return abs(a - b) <= atol + rtol * abs(a)


def _synchronised(device: torch.device, fn: Callable[[], Any]) -> tuple[Any, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def part_diagnostics(check: Check, budget: PartBudget) -> dict:
    from ..data.datamodule import TensorDataModule
    from ..diagnostics.similarity import cka_matrix
    from ..diagnostics.spectral import sigreg_statistic
    from ..presets import make_config
    from ..training.diagnostics_callback import DiagnosticsCallback, layer_embeddings, layer_metrics
    from ..training.module import WorkbenchModule

    config = make_config("supervised", [*check.sizes.diagnostics_model, "seed=0"])
    c = config.diagnostics
    data = TensorDataModule(config.data, cache_dir=check.cache_dir, order_seed=0).prepare()
    torch.manual_seed(0)
    cpu, dev = torch.device("cpu"), check.device
    module_cpu = WorkbenchModule(config, data.info).eval()
    module_dev = copy.deepcopy(module_cpu).to(dev)
    probe_cpu = data.splits["probe"]
    probe_dev = probe_cpu.to(dev)
    state: dict[str, Any] = {}

    def embeddings() -> dict:
        (z_cpu, _), t_cpu = _synchronised(cpu, lambda: layer_embeddings(module_cpu, probe_cpu.images, c.pools))
        (z_dev, _), t_dev = _synchronised(dev, lambda: layer_embeddings(module_dev, probe_dev.images, c.pools))
        state["z_cpu"], state["z_dev"] = z_cpu, z_dev
        rel = max(float((z_dev[k].cpu() - z).norm() / z.norm().clamp_min(1e-12)) for k, z in z_cpu.items())
        return _item("probe embeddings", "ok" if rel <= 1e-2 else "fail", cpu_s=t_cpu, device_s=t_dev,
                     max_rel_diff=rel, detail=f"{len(z_cpu)} (layer, pool) pairs of {len(probe_cpu)} images; "
                     "relative Frobenius difference, bound 1e-2 (TF32 convolutions and other kernels round "
                     "differently)")

    def metrics() -> dict:
        z_cpu = state["z_cpu"]
        worst: dict[str, float] = {}
        bad: list[str] = []
        t_cpu = t_dev = 0.0
        labels_dev = None if probe_cpu.labels is None else probe_cpu.labels.to(dev)
        factors_dev = None if probe_cpu.factors is None else probe_cpu.factors.to(dev)
        specs = data.data.factors
        for (layer, pool), z in z_cpu.items():
            args = (specs, c.coherence, c.knn_k, c.probe_steps, 0)
            m_cpu, dt = _synchronised(cpu, lambda: layer_metrics(z, probe_cpu.labels, probe_cpu.factors, *args,
                                                                  max_samples=c.max_samples))
            t_cpu += dt
            m_dev, dt = _synchronised(dev, lambda: layer_metrics(z.to(dev), labels_dev, factors_dev, *args,
                                                                  max_samples=c.max_samples))
            t_dev += dt
            # SIGReg's directions come from the device's generator inside layer_metrics; with one
            # CPU generator for both, the statistic itself is compared
            m_cpu["sigreg"] = float(sigreg_statistic(z, generator=torch.Generator().manual_seed(0)))
            m_dev["sigreg"] = float(sigreg_statistic(z.to(dev), generator=torch.Generator().manual_seed(0)))
            for name, a in m_cpu.items():
                b = m_dev.get(name, float("nan"))
                diff = abs(a - b) if math.isfinite(a) and math.isfinite(b) else (0.0 if math.isnan(a) and math.isnan(b)
                                                                                else math.inf)
                key = name if not name.startswith(("factor/", "coherence/")) else name.split("/")[0] + "/*"
                worst[key] = max(worst.get(key, 0.0), diff)
                if not _agree(a, b, name):
                    bad.append(f"layer {layer} {pool} {name}: cpu {a:.6g}, device {b:.6g}")
        for pool in c.pools:
            layers = sorted(l for (l, p) in z_cpu if p == pool)
            k_cpu = cka_matrix([z_cpu[(l, pool)] for l in layers])
            k_dev = cka_matrix([z_cpu[(l, pool)].to(dev) for l in layers]).cpu()
            diff = float((k_cpu - k_dev).abs().max())
            worst["cka"] = max(worst.get("cka", 0.0), diff)
            if diff > 1e-4:
                bad.append(f"{pool} CKA: max difference {diff:.3g}")
        return _item("metrics on the same embeddings", "fail" if bad else "ok", cpu_s=t_cpu, device_s=t_dev,
                     max_abs_diff=worst, disagree=bad[:20],
                     detail="every layer_metrics value, SIGReg (one CPU generator for both) and CKA; "
                            f"tolerance {METRIC_TOLERANCE} (score: accuracies and probe scores)")

    def callback_pass() -> dict:
        import numpy as np
        import pandas as pd

        tables, times = {}, {}
        sides = (("cpu", module_cpu, probe_cpu, cpu), ("device", module_dev, probe_dev, dev))
        for name, module, probe, device in sides:
            trainer = SimpleNamespace(datamodule=SimpleNamespace(splits={"probe": probe}, data=data.data),
                                      is_global_zero=True)
            run_dir = check.work / "diagnostics" / name
            callback = DiagnosticsCallback(run_dir, c, 0)
            _, times[name] = _synchronised(device, lambda: callback.run(trainer, module, 0))
            tables[name] = pd.read_csv(run_dir / "diagnostics.csv").set_index(["layer", "pool", "metric"])["value"]
            state[f"run_dir_{name}"] = run_dir
        a, b = tables["cpu"], tables["device"]
        same_rows = set(a.index) == set(b.index)
        joined = pd.concat([a.rename("cpu"), b.rename("device")], axis=1)
        finite_cpu = np.isfinite(joined["cpu"].to_numpy(dtype=float))
        finite_dev = np.isfinite(joined["device"].to_numpy(dtype=float))
        finite_mismatch = int((finite_cpu & ~finite_dev).sum())
        deterministic = np.array([not m.startswith(RANDOM_METRICS) for m in joined.index.get_level_values("metric")])
        diffs = (joined["cpu"] - joined["device"]).abs().to_numpy(dtype=float)[deterministic & finite_cpu & finite_dev]
        ok = same_rows and finite_mismatch == 0
        return _item("callback pass", "ok" if ok else "fail", cpu_s=times["cpu"], device_s=times["device"],
                     rows=len(b), same_rows=same_rows, finite_mismatch=finite_mismatch,
                     max_abs_diff=float(diffs.max()) if len(diffs) else 0.0,
                     detail="DiagnosticsCallback.run on each device (each embeds the probe set itself, so values "
                            f"differ by the embeddings' rounding; {', '.join(RANDOM_METRICS)} use the device's "
                            "generator); judged: the same rows, finite where the CPU's are")

    def layouts() -> dict:
        from sklearn.manifold import trustworthiness

        from ..analysis.layouts import layout_displacement, layouts_from_embeddings, normalise_layout, _procrustes

        n = min(check.sizes.layout_points, len(probe_cpu))
        pool = "mean"
        layers = sorted(l for (l, p) in state["z_cpu"] if p == pool)
        # layouts take host arrays: the device's embeddings are copied to the host first
        inputs = {name: {(0, l): state[key][(l, pool)][:n].cpu().numpy() for l in layers}
                  for name, key in (("cpu", "z_cpu"), ("device", "z_dev"))}
        # numba compiles UMAP's kernels at the first layout of a process: not part of either side's time
        rng = torch.Generator().manual_seed(0)
        layouts_from_embeddings({(0, l): torch.randn(32, 8, generator=rng).numpy() for l in (0, 1)}, progress=False,
                                n_epochs=2)
        out, times = {}, {}
        for name, arrays in inputs.items():
            start = time.perf_counter()
            out[name] = layouts_from_embeddings(arrays, progress=False, n_epochs=check.sizes.layout_epochs)
            times[name] = time.perf_counter() - start
        k = min(10, n // 2 - 1)
        tw = {name: [float(trustworthiness(inputs[name][key], out[name][key], n_neighbors=k))
                     for key in sorted(out[name])]
              for name in out}
        gap = max(abs(x - y) for x, y in zip(tw["cpu"], tw["device"]))
        moved = statistics.fmean(layout_displacement(_procrustes(out["device"][key], out["cpu"][key]),
                                                     normalise_layout(out["cpu"][key])) for key in sorted(out["cpu"]))
        return _item("layouts", "ok" if gap <= 0.02 else "fail", cpu_s=times["cpu"], device_s=times["device"],
                     trustworthiness_cpu=statistics.fmean(tw["cpu"]),
                     trustworthiness_device=statistics.fmean(tw["device"]),
                     max_trustworthiness_gap=gap, displacement=moved,
                     detail=f"`warm` UMAP of {n} points x {len(layers)} layers ({pool} pool) from the CPU's and the "
                            "device's embeddings; judged: trustworthiness (10 neighbours) within 0.02 layer by layer "
                            "(the methods of the README's layout table differ by up to 0.01); displacement: mean "
                            "distance between the two layouts after rotation, in layout radii")

    steps = {"probe embeddings": embeddings, "metrics on the same embeddings": metrics,
             "callback pass": callback_pass, "layouts": layouts}
    needs = {"metrics on the same embeddings": "z_cpu", "layouts": "z_dev"}

    def one(name: str) -> dict:
        if name in needs and needs[name] not in state:
            return _item(name, "not run", reason="the probe embeddings were not computed")
        return steps[name]()

    items = _run_items(budget, list(steps), one, check.log)
    return {
        "items": items,
        "settings": {"model": list(check.sizes.diagnostics_model), "probe_images": len(probe_cpu),
                     "device": str(dev)},
        "tolerance": "per item (detail column)",
        "substitutes": [] if check.cuda else ["the 'device' is the CPU: both sides run the same code on the CPU"],
        "columns": ["CPU s", "device s", "agreement"],
        "cells": lambda i: [_fmt(i.get("cpu_s"), ".2f"), _fmt(i.get("device_s"), ".2f"), _agreement(i)],
    }


def _agreement(item: dict) -> str:
    if "max_rel_diff" in item:
        return f"max relative difference {item['max_rel_diff']:.2g}"
    if "disagree" in item:
        return f"{len(item['disagree'])} values outside tolerance" + (f" (first: {item['disagree'][0]})"
                                                                    if item["disagree"] else "")
    if "same_rows" in item:
        return (f"{item['rows']} rows, same: {'yes' if item['same_rows'] else 'no'}, non-finite on the device only: "
                f"{item['finite_mismatch']}, largest difference {item['max_abs_diff']:.2g}")
    if "max_trustworthiness_gap" in item:
        return (f"trustworthiness {item['trustworthiness_cpu']:.3f} / {item['trustworthiness_device']:.3f}, "
                f"displacement {item['displacement']:.3f}")
    return item.get("reason", item.get("error", "-"))
