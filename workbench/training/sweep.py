"""Sweeps: every (preset, seed) pair trained in its own process, a bounded number at a time.

    python -m workbench sweep --preset supervised --preset dino --seeds 0,1,2 --jobs 2

A sweep is a list of *jobs*, one ``python -m workbench fit`` command each, in a fixed order
(presets in the order given, seeds within each preset). Its directory holds the runs and what is
needed to read them back or to run them elsewhere::

    runs_dir/<sweep name>/
      sweep.json              the manifest: name, every job's index, preset, seed, run name, command
      logs/<run name>.log     the job's standard output and error
      logs/<run name>.json    its exit code and wall time
      <preset>-seed<seed>/    the run directories (the usual contract, see workbench.runs)

Why processes: a crash, a NaN or an out-of-memory error ends one run, not the sweep; each run
starts from a clean interpreter (no state shared through caches or seeds); and the same command
lines run unchanged on a cluster, one per SLURM array task (``--only $SLURM_ARRAY_TASK_ID``, see
:func:`slurm_script`). ``load_sweep(path)`` returns the runs as :class:`~workbench.runs.Run`
handles for :func:`~workbench.runs.compare_runs` and the comparison notebook.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from ..atomic import atomic_write_text
from ..config import PLACEMENT_FIELDS, changed_fields, parse_override
from ..errors import ConfigError, WorkbenchError, check_one_of
from ..runs import Run

MANIFEST = "sweep.json"
#: Fields a sweep sets itself for every job; an override of them would break the layout.
RESERVED = ("seed", "name", "runs_dir")


@dataclass(frozen=True)
class Job:
    """One run of a sweep: ``index`` in the sweep's fixed order, and the run directory's name."""

    index: int
    preset: str
    seed: int
    name: str
    args: tuple[str, ...]  # the arguments after ``python -m workbench``

    def command(self, python: str = "python") -> list[str]:
        return [python, "-m", "workbench", *self.args]


class SweepError(WorkbenchError):
    """Some jobs of a sweep failed. ``runs`` holds the runs that completed, ``failures`` the others
    (job, exit code, log path, last lines of the log)."""

    def __init__(self, message: str, runs: list[Run], failures: list[dict]):
        super().__init__(message)
        self.runs, self.failures = runs, failures


def parse_seeds(text: str | Sequence[int]) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` (inclusive) or a mix (``"0-2,7"``) -> a list of distinct seeds."""
    if not isinstance(text, str):
        seeds = [int(s) for s in text]
    else:
        seeds = []
        try:
            for part in filter(None, (p.strip() for p in text.split(","))):
                low, dash, high = part.partition("-")
                seeds += list(range(int(low), int(high) + 1)) if dash else [int(part)]
        except ValueError:
            raise ConfigError("--seeds", text, "comma-separated integers or ranges, e.g. 0,1,2 or 0-4") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError("--seeds", text, "at least one seed, all distinct integers >= 0")
    return seeds


def plan(
    presets: Sequence[str],
    seeds: str | Sequence[int],
    overrides: Sequence[str] = (),
    runs_dir: str | Path = "runs",
    name: str | None = None,
    data_dir: str | Path | None = None,
) -> tuple[Path, list[Job]]:
    """The sweep's directory and its jobs, without running anything.

    Checked here, before any process starts: presets exist, seeds parse, overrides are
    ``key=value`` and leave ``seed``, ``name`` and ``runs_dir`` to the sweep. Every other value is
    validated by each job itself (a job with an invalid config fails within seconds and writes
    nothing, and the other jobs go on).
    """
    from ..presets import PRESETS

    presets = list(presets)
    if not presets:
        raise ConfigError("--preset", presets, "at least one preset (repeat --preset for several)")
    for preset in presets:
        check_one_of("--preset", preset, PRESETS)
    if len(set(presets)) != len(presets):
        raise ConfigError("--preset", presets, "distinct presets")
    seeds = parse_seeds(seeds)
    for override in overrides:
        key, _ = parse_override(override)
        if key in RESERVED:
            raise ConfigError("--set", override, f"an override of anything but {', '.join(RESERVED)}: "
                                                 "the sweep sets them for every run")
    name = name or time.strftime("sweep-%Y%m%d-%H%M%S")
    if not name or "/" in name or name.startswith("."):
        raise ConfigError("--name", name, "a plain directory name")
    root = Path(runs_dir) / name
    jobs = []
    for preset in presets:
        for seed in seeds:
            run_name = f"{preset}-seed{seed}"
            args = ["fit", "--preset", preset]
            for override in overrides:
                args += ["--set", override]
            # The sweep's own fields last, so nothing can override them.
            args += ["--set", f"seed={seed}", "--set", f"name={run_name}", "--runs-dir", str(root)]
            if data_dir is not None:
                args += ["--data-dir", str(data_dir)]
            jobs.append(Job(len(jobs), preset, seed, run_name, tuple(args)))
    return root, jobs


def write_manifest(root: Path, jobs: Sequence[Job]) -> None:
    """``sweep.json``: the same bytes for the same sweep, so SLURM array tasks writing it at once
    (atomically) agree."""
    manifest = {"name": root.name, "jobs": [{**asdict(job), "args": list(job.args),
                                              "command": shlex.join(job.command())} for job in jobs]}
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def load_sweep(path: str | Path) -> list[Run]:
    """The runs of a sweep directory, in job order; jobs that never created their run are left
    out. ``compare_runs(load_sweep(path))`` stacks their diagnostics."""
    root = Path(path)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{root} is not a sweep directory (no {MANIFEST}); "
                                "create one with `python -m workbench sweep`")
    jobs = json.loads(manifest.read_text())["jobs"]
    return [Run(root / job["name"]) for job in jobs if (root / job["name"] / "config.yaml").is_file()]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _env(jobs_in_flight: int) -> dict[str, str]:
    """The child's environment: the CPU cores shared between the jobs in flight (unless the user
    set a thread count), so that two jobs on two cores do not each start two threads."""
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, jobs_in_flight)))
    # The child must import this very package, wherever the sweep was started from.
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env


def _job_overrides(job: Job) -> list[str]:
    """The ``--set`` values of a job's command line, in order."""
    return [job.args[i + 1] for i, arg in enumerate(job.args[:-1]) if arg == "--set"]


def _changed_settings(job: Job, run: Run) -> list[str]:
    """The config fields in which a finished run differs from what ``job`` would train now (its
    preset, the sweep's overrides and the seed), as dotted names; empty when it is the same run."""
    from ..presets import make_config

    try:
        return changed_fields(make_config(job.preset, _job_overrides(job)), run.config, ignore=PLACEMENT_FIELDS)
    except Exception as error:  # an unreadable config.yaml is a different run, not a crash of the sweep
        return [f"config.yaml unreadable: {error}"]


def run_jobs(root: Path, jobs: Sequence[Job], parallel: int = 1, echo=print) -> tuple[list[Run], list[dict]]:
    """Run ``jobs`` with at most ``parallel`` processes at a time; return (completed runs,
    failures). A completed run already in the sweep directory is kept and not run again when its
    config is the one the job would train; one trained with other settings is reported as a failure
    (never silently reused, never overwritten)."""
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    absolute = root.resolve()  # the returned runs stay valid if the caller changes directory
    pending, running, done, failures = list(jobs), {}, {}, []

    def finish(job: Job, returncode: int, started: float) -> None:
        log = logs / f"{job.name}.log"
        atomic_write_text(logs / f"{job.name}.json", json.dumps(
            {"index": job.index, "returncode": returncode, "wall_s": round(time.perf_counter() - started, 2)}) + "\n")
        if returncode == 0:
            done[job.index] = Run(absolute / job.name)
            echo(f"[{job.index}] {job.name}: completed")
        else:
            failures.append({"job": job.name, "index": job.index, "returncode": returncode, "log": str(log),
                             "tail": _tail(log)})
            echo(f"[{job.index}] {job.name}: FAILED (exit code {returncode}); log: {log}")

    try:
        while pending or running:
            while pending and len(running) < parallel:
                job = pending.pop(0)
                existing = Run(absolute / job.name)
                if existing.path.exists():
                    status = existing.summary.get("status", "incomplete")
                    changed = _changed_settings(job, existing) if status == "completed" else []
                    if status == "completed" and not changed:
                        done[job.index] = existing
                        echo(f"[{job.index}] {job.name}: already completed, kept")
                    elif changed:
                        failures.append({"job": job.name, "index": job.index, "returncode": None,
                                         "log": str(logs / f"{job.name}.log"),
                                         "tail": f"{existing.path} was trained with other settings "
                                                 f"({', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''}): "
                                                 "delete it to train it again, or give the sweep another --name"})
                        echo(f"[{job.index}] {job.name}: FAILED (its run directory holds a run with other settings)")
                    else:
                        failures.append({"job": job.name, "index": job.index, "returncode": None,
                                         "log": str(logs / f"{job.name}.log"),
                                         "tail": f"{existing.path} exists from an earlier attempt (status {status}): "
                                                 f"delete it to run the job again, or continue it with "
                                                 f"`python -m workbench fit --resume {existing.path}`"})
                        echo(f"[{job.index}] {job.name}: FAILED (its run directory exists, status {status})")
                    continue
                with open(logs / f"{job.name}.log", "wb") as log:
                    process = subprocess.Popen(job.command(sys.executable), stdout=log, stderr=subprocess.STDOUT,
                                               env=_env(min(parallel, len(jobs))))
                running[process] = (job, time.perf_counter())
                echo(f"[{job.index}] {job.name}: started")
            time.sleep(0.1)
            for process in [p for p in running if p.poll() is not None]:
                job, started = running.pop(process)
                finish(job, process.returncode, started)
    except BaseException:
        # Interrupted (Ctrl-C): stop the jobs this sweep started, then re-raise. SIGTERM first
        # (Lightning ends a run on it at the next batch); a job still alive after 30 s is killed.
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        raise
    return [done[i] for i in sorted(done)], sorted(failures, key=lambda f: f["index"])


def sweep(
    presets: Sequence[str],
    seeds: str | Sequence[int],
    overrides: Sequence[str] = (),
    jobs: int = 1,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    only: Sequence[int] | None = None,
    data_dir: str | Path | None = None,
    echo=print,
) -> list[Run]:
    """Train every (preset, seed) pair, each in its own ``python -m workbench fit`` process.

    Args:
        presets: preset names (see ``python -m workbench presets``).
        seeds: ``[0, 1, 2]`` or ``"0,1,2"`` / ``"0-2"``; each run gets ``seed=<seed>`` (the data
            split is fixed by ``data.seed``, so all runs see the same images).
        overrides: ``key=value`` overrides applied to every run.
        jobs: how many processes run at once (each gets ``cpu_count // jobs`` threads unless
            ``OMP_NUM_THREADS`` is set).
        runs_dir, name: the runs go to ``runs_dir/name/<preset>-seed<seed>`` (default name:
            ``sweep-<timestamp>``).
        only: run just these job indices (what one SLURM array task does); the others are left
            alone.
        data_dir: where the runs cache generated datasets (``fit --data-dir``; default: ``data``
            in the working directory).

    Returns the completed runs in job order. When some jobs fail, the others still run to the end
    and :class:`SweepError` is raised afterwards, naming each failed run, its exit code and the
    last lines of its log (``.runs`` holds the completed runs).
    """
    if int(jobs) < 1:
        raise ConfigError("--jobs", jobs, "an integer >= 1")
    if only is not None and not name:
        raise ConfigError("--only", list(only), "together with --name, so that every part of the sweep "
                                                "(every array task) writes into the same sweep directory")
    root, planned = plan(presets, seeds, overrides, runs_dir, name, data_dir)
    selected = planned
    if only is not None:
        bad = [i for i in only if not 0 <= int(i) < len(planned)]
        if bad:
            raise ConfigError("--only", bad, f"job indices in 0..{len(planned) - 1} (the sweep has {len(planned)} jobs)")
        selected = [planned[int(i)] for i in only]
    write_manifest(root, planned)
    runs, failures = run_jobs(root, selected, int(jobs), echo)
    if failures:
        raise SweepError(failure_report(failures, len(selected), f"runs of sweep {root}"), runs, failures)
    return runs


def failure_report(failures: Sequence[dict], total: int, what: str = "runs") -> str:
    """The message for :class:`SweepError`: how many of ``total`` ``what`` failed, then each failed
    run with its exit code, its log and the log's last lines (``failures`` as :func:`run_jobs` returns them)."""
    lines = [f"{len(failures)} of {total} {what} failed:"]
    for f in failures:
        code = "not started" if f["returncode"] is None else f"exit code {f['returncode']}"
        lines.append(f"- {f['job']} (job {f['index']}, {code}, log {f['log']}):")
        lines += [f"    {line}" for line in f["tail"].splitlines()]
    return "\n".join(lines)


def slurm_script(
    presets: Sequence[str],
    seeds: str | Sequence[int],
    overrides: Sequence[str] = (),
    runs_dir: str | Path = "runs",
    name: str | None = None,
    gpus: int = 1,
    cpus: int = 8,
    time_limit: str = "04:00:00",
    data_dir: str | Path | None = None,
) -> str:
    """A SLURM job-array script running the same sweep, one job per array task.

    Task ``i`` runs ``python -m workbench sweep ... --only i``: the same command for every task,
    so the runs land in one sweep directory exactly as a local sweep would put them. Edit the
    ``#SBATCH`` lines (partition, account, modules) for your cluster.
    """
    root, jobs = plan(presets, seeds, overrides, runs_dir, name, data_dir)
    args = ["python", "-m", "workbench", "sweep"]
    for preset in dict.fromkeys(j.preset for j in jobs):
        args += ["--preset", preset]
    args += ["--seeds", ",".join(str(s) for s in dict.fromkeys(j.seed for j in jobs))]
    for override in overrides:
        args += ["--set", override]
    args += ["--runs-dir", str(runs_dir), "--name", root.name]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    command = shlex.join(args) + ' --only "$SLURM_ARRAY_TASK_ID"'
    listing = "\n".join(f"#   {j.index}: {j.name}" for j in jobs)
    return f"""#!/bin/bash
#SBATCH --job-name={root.name}
#SBATCH --array=0-{len(jobs) - 1}
#SBATCH --cpus-per-task={cpus}
#SBATCH --gres=gpu:{gpus}
#SBATCH --time={time_limit}
#SBATCH --output={root}/logs/slurm-%A_%a.out
# Before `sbatch`: mkdir -p {root}/logs   (SLURM does not create the --output directory)
# Array task i trains job i of the sweep:
{listing}
# Afterwards: workbench.load_sweep("{root}") or compare_runs("{root}").
{command}
"""
