"""Peak host memory of one diagnostics pass on a large probe set (``python -m workbench bench --memory``).

Runs in a fresh process so that ``ru_maxrss`` measures this pass alone: a ViT of the given depth
(random weights: memory does not depend on training), ``n`` generated ``shapes`` images as the
probe set, and the callback's full pass (embeddings of every layer and pool, two augmented views,
every metric, CKA, the embeddings file), with the default ``diagnostics`` settings unless
``max_samples`` is given.

Besides the overall peak, a thread samples the resident set size every few milliseconds and
records the highest value seen during each phase of the pass (``embed``: the probe embeddings;
``views``: the augmented views; ``metrics``: every :func:`layer_metrics` call; ``cka``: the CKA
matrices; ``save``: the embeddings file), so a regression can be traced to its phase. Sampling can
miss a peak shorter than the interval; ``peak_mib`` (the kernel's own maximum) never does.

Reference measurements (2 shared CPU cores, other jobs running; depth 12, width 96, default
``max_samples=5000``): see ``DiagnosticsConfig`` in :mod:`workbench.config`.
"""

from __future__ import annotations

import json
import subprocess
import sys

_CODE = """
import json, os, resource, tempfile, threading, time, torch
from types import SimpleNamespace
import workbench as wb
from workbench.data.shapes import ShapesParams, load_shapes
from workbench.data.datamodule import DataInfo
from workbench.training import diagnostics_callback as cbm
from workbench.training.module import WorkbenchModule

PAGE = os.sysconf("SC_PAGE_SIZE")

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20

current = {{"phase": None}}
phases = {{}}

def sample():
    while True:
        name = current["phase"]
        if name is not None:
            phases[name]["peak_mib"] = max(phases[name]["peak_mib"], rss_mib())
        time.sleep(0.005)

def timed(owner, attr, name):
    fn = getattr(owner, attr)
    def inner(*args, **kwargs):
        outer = current["phase"]
        current["phase"] = name
        entry = phases.setdefault(name, {{"peak_mib": 0.0, "seconds": 0.0}})
        entry["peak_mib"] = max(entry["peak_mib"], rss_mib())
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            entry["seconds"] += time.perf_counter() - start
            current["phase"] = outer
    setattr(owner, attr, inner)

if os.path.exists("/proc/self/statm"):
    callback = cbm.DiagnosticsCallback
    for owner, attr, name in [(callback, "_embed", "embed"), (callback, "_two_views", "views"),
                              (cbm, "layer_metrics", "metrics"), (cbm, "cka_matrix", "cka"),
                              (callback, "_save_embeddings", "save")]:
        timed(owner, attr, name)
    threading.Thread(target=sample, daemon=True).start()

data = load_shapes(ShapesParams(num_images={n}), cache_dir=None)
config = wb.make_config("supervised", {overrides!r})
info = DataInfo("shapes", 3, 32, data.num_classes, data.classes, (0.5,) * 3, (0.25,) * 3, data.factors)
module = WorkbenchModule(config, info).eval()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
trainer = SimpleNamespace(datamodule=SimpleNamespace(splits={{"probe": data.train}}, data=data), is_global_zero=True)
with tempfile.TemporaryDirectory() as d:
    cb = cbm.DiagnosticsCallback(d, config.diagnostics)
    cpu = time.process_time()
    start = time.perf_counter()
    cb.run(trainer, module, 0)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"probe": len(data.train), "depth": {depth}, "width": {width},
                   "max_samples": config.diagnostics.max_samples, "threads": torch.get_num_threads(),
                   "before_mib": round(before / 1024), "peak_mib": round(peak / 1024), "seconds": round(seconds, 1),
                   "cpu_s": round(cpu, 1),
                   "phases": {{k: {{"peak_mib": round(v["peak_mib"]), "seconds": round(v["seconds"], 1)}}
                              for k, v in phases.items()}}}}))
"""


def measure(n: int = 50000, depth: int = 12, width: int = 96, max_samples: int | None = None) -> dict:
    """Peak resident memory (MiB) and wall time of one diagnostics pass over ``n`` probe images.

    Returns ``{"probe", "depth", "width", "max_samples", "threads", "before_mib"`` (after the data
    and the model exist), ``"peak_mib"`` (the whole process), ``"seconds"`` (the pass, wall clock),
    ``"cpu_s"`` (the pass, CPU time of all threads: on a shared machine a steadier measure of the
    work than the wall time), ``"phases": {name: {"peak_mib", "seconds"}}}``.
    """
    overrides = [f"model.depth={depth}", f"model.width={width}"]
    if max_samples is not None:
        overrides.append(f"diagnostics.max_samples={max_samples}")
    code = _CODE.format(n=int(n), depth=int(depth), width=int(width), overrides=overrides)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        # an out-of-memory kill leaves no traceback: say so rather than fail on empty output
        reason = "killed (out of memory?)" if out.returncode < 0 else out.stderr.strip().splitlines()[-1:]
        raise RuntimeError(f"the diagnostics pass over {n} probe images failed: {reason}")
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 50000))
