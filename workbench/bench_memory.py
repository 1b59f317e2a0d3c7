"""Peak host memory of one diagnostics pass on a large probe set (``python -m workbench bench --memory``).

Runs in a fresh process so that ``ru_maxrss`` measures this pass alone: a ViT of the given depth
(random weights: memory does not depend on training), ``n`` generated ``shapes`` images as the
probe set, and the callback's full pass (embeddings of every layer and pool, two augmented views,
every metric, CKA, the embeddings file).
"""

from __future__ import annotations

import json
import subprocess
import sys


def measure(n: int = 50000, depth: int = 12, width: int = 96) -> dict[str, float]:
    code = f"""
import json, resource, time, tempfile, torch
from types import SimpleNamespace
import workbench as wb
from workbench.data.shapes import ShapesParams, load_shapes
from workbench.data.datamodule import DataInfo
from workbench.diagnostics.callback import DiagnosticsCallback
from workbench.module import WorkbenchModule
data = load_shapes(ShapesParams(num_images={n}), cache_dir=None)
config = wb.make_config("supervised", ["model.depth={depth}", "model.width={width}"])
info = DataInfo("shapes", 3, 32, data.num_classes, data.classes, (0.5,) * 3, (0.25,) * 3, data.factors)
module = WorkbenchModule(config, info).eval()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
trainer = SimpleNamespace(datamodule=SimpleNamespace(splits={{"probe": data.train}}, data=data), is_global_zero=True)
with tempfile.TemporaryDirectory() as d:
    cb = DiagnosticsCallback(d, config.diagnostics)
    start = time.perf_counter()
    cb.run(trainer, module, 0)
    seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"probe": len(data.train), "before_mib": before / 1024, "peak_mib": peak / 1024,
                   "seconds": seconds}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(measure())
