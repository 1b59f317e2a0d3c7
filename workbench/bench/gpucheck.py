"""``python -m workbench gpucheck``: every GPU path of the workbench in one command, one table, one JSON.

The parts (each a list of items; each item ``ok``, ``fail``, ``error`` or ``not run`` with the reason):

(a) **precision** -- every preset trains the same steps from the same seed in ``32-true`` and in
    ``bf16-mixed``; the per-step losses must be finite and agree within :data:`LOSS_TOLERANCE`;
(b) **compile** -- ``trainer.compile=true`` against eager: the same losses (same tolerance), the
    steady-state step-time ratio, the compile time (the first step's excess and the whole run's);
(c) **throughput** -- images/s, peak memory and the fraction of the device's bf16 peak reached by
    the backbone's model FLOPs (:mod:`workbench.bench.throughput`), ViT-Tiny on 32 x 32 images, for
    ``supervised``, ``dino`` and ``mae`` at two batch sizes;
(d) **sync** -- CUDA's ``set_sync_debug_mode("error")`` over the first training steps of every preset
    that write no log (:mod:`workbench.bench.host_sync`); the watched steps are those of (a)'s
    ``bf16-mixed`` run (a step that synchronises aborts that run, which (a) then repeats unwatched);
(e) **diagnostics** -- the diagnostics on the device against the CPU: the probe embeddings, every
    per-layer metric and CKA computed on the same embeddings on both, the callback's whole pass,
    and the layouts of the device's embeddings, each timed;
(f) **notebooks** -- every run of every notebook at each of its GPU scales (``SCALE = "gpu"``, and
    ``"gpu-cifar10"`` where a notebook has it; :mod:`workbench.bench.notebook_scales`) for a few
    steps, each notebook's first run with its diagnostics; CIFAR-10 is read from ``--data-dir``, or
    random images in its format stand in for it.

A part that raises is reported ``not run`` with the error and the others go on. Every part has a
share of a time budget (``--budget``, :data:`SHARES`); time a part leaves unused passes on to the
next, and an item starts only if its part's time left covers the longest item so far.

Without CUDA the command refuses to start, except with ``--dry-run``: every part at toy sizes on the
CPU, with CPU substitutes for what exists only on CUDA (each item says which): ``bf16-mixed`` is
CPU autocast, the sync check records synchonising ops by name (:class:`HostSyncRecorder`) instead of
CUDA's detector, ``torch.compile`` uses dynamo's ``eager`` backend (tracing without code
generation), peak memory is the process's peak resident set, the "device" of (e) is the CPU itself,
and the peak FLOP rate is a nominal 1 TFLOP/s unless ``--peak-tflops`` is given. The dry run uses one
CPU thread. It checks that the code runs; its numbers are not measurements.
"""
from __future__ import annotations

import contextlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..errors import WorkbenchError
from .gpucheck_runs import DRY, GPU, Check, PartBudget, _fmt, describe

PARTS: dict[str, tuple[str, str]] = {
    "precision": ("a", "bf16-mixed against 32-true, every preset"),
    "compile": ("b", "trainer.compile=true against eager"),
    "throughput": ("c", "throughput, peak memory and share of the bf16 peak, ViT-Tiny"),
    "sync": ("d", "no host synchronisation between logging steps, every preset"),
    "diagnostics": ("e", "diagnostics and layouts on the device against the CPU"),
    "notebooks": ("f", "every notebook run at its GPU scales starts"),
}

#: The order the parts run in: the diagnostics last, because UMAP's compiled kernels leave threads
#: behind that slow every later CPU op (the dry run's training several times over).
ORDER = ("precision", "compile", "throughput", "sync", "notebooks", "diagnostics")

#: The whole command's default time budget (seconds): with start-up and the last item's overrun
#: the command ends within 8 minutes on one H100-class GPU.
BUDGET_S = 450.0

#: Shares of the time budget, by part.
SHARES = {"precision": 0.25, "compile": 0.20, "throughput": 0.10, "sync": 0.03, "diagnostics": 0.14,
          "notebooks": 0.28}


class Budget:
    """Deadlines of the parts: part k ends at ``start + total * (share_1 + ... + share_k)``, so time a
    part leaves unused goes to the next. ``total=inf``: no deadline."""

    def __init__(self, total: float, parts: Sequence[str]):
        self.start = time.perf_counter()
        self.total = total
        shares = [SHARES[p] for p in parts]
        scale = sum(shares) or 1.0
        self.deadlines, acc = {}, 0.0
        for p, s in zip(parts, shares):
            acc += s / scale
            self.deadlines[p] = self.start + total * acc

    def part(self, name: str, first_guess: float) -> "PartBudget":
        return PartBudget(self.deadlines.get(name, math.inf), first_guess)


def _runners() -> dict[str, Callable[[Check, PartBudget], dict]]:
    from .gpucheck_diagnostics import part_diagnostics
    from .gpucheck_parts import part_compile, part_notebooks, part_precision, part_sync, part_throughput

    return {"precision": part_precision, "compile": part_compile, "throughput": part_throughput, "sync": part_sync,
            "diagnostics": part_diagnostics, "notebooks": part_notebooks}


#: Time of a part's first item, before any was measured (seconds; GPU).
FIRST_GUESS = {"precision": 8.0, "compile": 60.0, "throughput": 8.0, "sync": 4.0, "diagnostics": 0.0,
               "notebooks": 5.0}


# ---- the command ------------------------------------------------------------------------------


def _status(items: list[dict]) -> str:
    statuses = {i["status"] for i in items}
    if not items:
        return "not run"
    if statuses & {"fail", "error"}:
        return "fail"
    if "not run" in statuses:
        return "partial" if "ok" in statuses else "not run"
    return "ok"


def _summary(key: str, part: dict) -> str:
    items = part.get("items", [])
    done = [i for i in items if i["status"] in ("ok", "fail")]
    counts = ", ".join(f"{sum(i['status'] == s for i in items)} {s}" for s in ("ok", "fail", "error", "not run")
                       if any(i["status"] == s for i in items))
    if key in ("precision", "compile") and done:
        worst = max(done, key=lambda i: i.get("mean_rel") or 0.0)
        extra = f"; largest mean difference {_fmt(100 * (worst.get('mean_rel') or 0.0), '.2f', '%')} ({worst['name']})"
        if key == "compile":
            extra += "; step-time ratio " + ", ".join(f"{i['name']} {_fmt(i.get('step_ratio'), '.2f')}" for i in done)
        return counts + extra
    if key == "throughput" and done:
        best = max(done, key=lambda i: i.get("images_per_s") or 0.0)
        return counts + f"; best {_fmt(best.get('images_per_s'), ',.0f')} images/s ({best['name']})"
    return counts


def run_gpucheck(dry_run: bool = False, parts: Sequence[str] | None = None, budget_s: float | None = None,
                 peak_tflops: float | None = None, data_dir: str | Path = "data", work_dir: str | Path | None = None,
                 presets: Sequence[str] | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Run the parts (all by default) and return the result (what ``--out`` writes as JSON).

    Refuses to start without CUDA unless ``dry_run``. ``work_dir``: where the runs and data go
    (default: a temporary directory, removed afterwards). ``presets``: the presets of (a) and (d)
    (default: every preset). ``budget_s``: the whole command's time budget (default
    :data:`BUDGET_S`; none in a dry run). The parts run in :data:`ORDER` and are reported in
    :data:`PARTS` order.
    """
    from ..presets import PRESETS
    from .suite import machine_info

    if not dry_run and not torch.cuda.is_available():
        raise WorkbenchError(
            f"gpucheck needs a CUDA GPU, and torch.cuda.is_available() is False here (torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda or 'none'}). Run it on a machine with an NVIDIA GPU, or pass --dry-run to "
            "walk every part on the CPU at toy sizes (a check of the command, not a measurement).")
    parts = list(parts or PARTS)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        from ..errors import ConfigError

        raise ConfigError("--parts", ",".join(unknown), f"names among {', '.join(PARTS)}")
    presets = tuple(presets or PRESETS)
    if budget_s is None:
        budget_s = math.inf if dry_run else BUDGET_S
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    started = time.perf_counter()
    device = torch.device("cpu") if dry_run else torch.device("cuda", torch.cuda.current_device())
    with contextlib.ExitStack() as stack:
        if dry_run:
            # toy sizes gain nothing from threads, and on a busy machine threads waiting for each
            # other make every small op slower by an order of magnitude
            stack.callback(torch.set_num_threads, torch.get_num_threads())
            torch.set_num_threads(1)
        if work_dir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="workbench-gpucheck-")))
        else:
            work = Path(work_dir)
            work.mkdir(parents=True, exist_ok=True)
        check = Check(DRY if dry_run else GPU, dry_run, device, work, Path(data_dir), peak_tflops, log, presets)
        budget = Budget(budget_s, [p for p in ORDER if p in parts])
        results: dict[str, dict] = {}
        for key in ORDER:
            letter, title = PARTS[key]
            entry: dict[str, Any] = {"part": letter, "title": title}
            if key not in parts:
                entry.update(status="not run", reason="not selected (--parts)", items=[])
                results[key] = entry
                continue
            log(f"({letter}) {title}")
            start = time.perf_counter()
            try:
                part = _runners()[key](check, budget.part(key, 0.0 if dry_run else FIRST_GUESS[key]))
                cells = part.pop("cells")
                for item in part["items"]:
                    if item["status"] in ("ok", "fail"):
                        item["cells"] = cells(item)
                entry.update(part)
                entry["status"] = _status(part["items"])
                entry["summary"] = _summary(key, part)
            except Exception as exc:  # a part that cannot run is reported; the others go on
                entry.update(status="not run", reason=describe(exc), items=[])
            entry["seconds"] = round(time.perf_counter() - start, 1)
            results[key] = entry
            log(f"  -> {entry['status']} ({entry['seconds']:.0f} s)")
    return _finite({"machine": _machine(machine_info(), device), "dry_run": dry_run, "budget_s": budget_s,
                    "presets": list(presets), "parts": {key: results[key] for key in PARTS},
                    "wall_s": round(time.perf_counter() - started, 1)})


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN or infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _machine(info: dict, device: torch.device) -> dict:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                    capability=f"{props.major}.{props.minor}")
    return info


def to_markdown(result: dict) -> str:
    """The summary table (one row per part), then one table per part (one row per item)."""
    m = result["machine"]
    where = (f"{m.get('gpu')} ({m.get('gpu_memory_gib')} GiB, CUDA {m.get('cuda')}), torch {m['torch']}"
             if m.get("gpu") else f"CPU only ({m['cpu']}), torch {m['torch']}")
    lines = [f"gpucheck on {where}" + (" -- DRY RUN: toy sizes on the CPU, not a measurement" if result["dry_run"]
                                       else ""), "",
             "| part | check | status | result | time |", "|---|---|---|---|---|"]
    for key, part in result["parts"].items():
        outcome = part.get("summary") or part.get("reason", "")
        lines.append(f"| ({part['part']}) {key} | {part['title']} | {part['status']} | {_cell(outcome)} | "
                     f"{part.get('seconds', 0):.0f} s |")
    for key, part in result["parts"].items():
        if not part.get("items"):
            continue
        columns = part.get("columns", [])
        lines += ["", f"**({part['part']}) {part['title']}** -- {_cell(part.get('tolerance', ''))}"]
        for note in part.get("substitutes", []):
            lines.append(f"Substitute: {note}.  ")
        for note in part.get("notes", []):
            lines.append(f"{note}.  ")
        lines += ["", "| item | status | " + " | ".join(columns) + " | s |",
                  "|---|---|" + "---|" * len(columns) + "---|"]
        for item in part["items"]:
            why = _cell(item.get("reason") or item.get("error") or "")
            cells = item.get("cells") or [why] + [""] * (len(columns) - 1)
            lines.append(f"| {item['name']} | {item['status']} | " + " | ".join(_cell(c) for c in cells)
                         + f" | {_fmt(item.get('seconds'), '.0f')} |")
    lines += ["", f"{result['wall_s']:.0f} s in all, `python -m workbench gpucheck"
              + (" --dry-run" if result["dry_run"] else "") + "`."]
    return "\n".join(lines)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def main(dry_run: bool = False, out: str | None = None, parts: Sequence[str] | None = None,
         budget_s: float | None = None, peak_tflops: float | None = None, data_dir: str | Path = "data",
         work_dir: str | Path | None = None, presets: Sequence[str] | None = None) -> int:
    """The CLI: run, print the table, write ``out`` (JSON for a ``.json`` path, else the table).
    Returns 0 when every part is ``ok``, 1 otherwise."""
    from ..atomic import atomic_write_text

    result = run_gpucheck(dry_run=dry_run, parts=parts, budget_s=budget_s, peak_tflops=peak_tflops, data_dir=data_dir,
                          work_dir=work_dir, presets=presets)
    table = to_markdown(result)
    print(table)
    if out:
        path = Path(out)
        if path.suffix == ".json":
            atomic_write_text(path, json.dumps({**result, "markdown": table}, indent=2, default=_json_default) + "\n")
        else:
            atomic_write_text(path, table + "\n")
    return 0 if all(p["status"] == "ok" for p in result["parts"].values()) else 1


def _json_default(value: Any) -> Any:
    return str(value)
