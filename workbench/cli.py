"""``python -m workbench fit | analyze | runs | presets | bench | gpucheck | sweep``."""

from __future__ import annotations

import argparse
import shlex
import sys

from .errors import WorkbenchError


def _fit(args: argparse.Namespace) -> int:
    from .config import RunConfig
    from .presets import make_config
    from .training.fit import fit

    overrides = list(args.set or [])
    if args.resume:
        if args.preset or args.config or args.runs_dir:
            from .errors import ConfigError

            raise ConfigError("--resume", args.resume, "a run directory alone (no --preset, --config or --runs-dir: "
                                                       "the run's config.yaml is the config)")
        print(fit(resume=args.resume, overrides=overrides, cache_dir=args.data_dir).path)
        return 0
    if args.runs_dir:
        overrides.append(f"runs_dir={args.runs_dir}")
    if args.config:
        base = RunConfig.from_yaml(args.config)
        config = make_config(args.preset, overrides, base=base)
    else:
        config = make_config(args.preset or "supervised", overrides)
    run = fit(config, cache_dir=args.data_dir)
    print(run.path)
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from .analysis.analyze import analyze
    from .config import parse_override
    from .errors import ConfigError

    sources = [flag for flag, value in (("--timm", args.timm), ("--run", args.run)) if value]
    if len(sources) > 1 or not (sources or args.checkpoint):
        raise ConfigError("--timm", args.timm, "one model: --timm NAME (with --checkpoint FILE for local weights), "
                                               "--run RUN_DIR, or --checkpoint FILE of a workbench run")
    model_kwargs = dict(parse_override(a) for a in args.model_arg or [])
    run = analyze(args.timm, args.data, run=args.run, checkpoint=args.checkpoint, pretrained=args.pretrained,
                  model_kwargs=model_kwargs or None, image_size=args.image_size, overrides=args.set or [],
                  name=args.name or "", runs_dir=args.runs_dir, out=args.out, cache_dir=args.data_dir,
                  device=args.device, batch_size=args.batch_size)
    print(run.path)
    return 0


def _report(args: argparse.Namespace) -> int:
    from .figures.report import write_report

    out = write_report(args.runs, args.out, pool=args.pool, explorer=not args.no_explorer,
                       layout_points=args.points)
    print(out)
    return 0


def _runs(args: argparse.Namespace) -> int:
    from .runs import list_runs

    table = list_runs(args.runs_dir)
    if table.empty:
        print(f"no runs under {args.runs_dir}")
    else:
        print(table.to_string(index=False))
    return 0


def _presets(args: argparse.Namespace) -> int:
    from .presets import PRESETS

    width = max(len(n) for n in PRESETS)
    for name, preset in PRESETS.items():
        print(f"{name:<{width}}  {preset.summary}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.controls:
        from .bench.controls import main as controls
        from .training.sweep import parse_seeds

        return controls(seeds=parse_seeds(args.seeds), jobs=args.jobs, quick=args.quick, out=args.out,
                        runs_dir=args.runs_dir, data_dir=args.data_dir)
    if args.memory:
        from .bench.memory import measure

        for n in args.memory:
            print(measure(n=n, depth=12))
        return 0
    from .bench.suite import main

    return main(quick=args.quick, skip_layouts=args.skip_layouts, out=args.out, runs_dir=args.runs_dir,
                data_dir=args.data_dir)


def _gpucheck(args: argparse.Namespace) -> int:
    from .bench.gpucheck import main

    return main(dry_run=args.dry_run, out=args.out, parts=args.parts, budget_s=args.budget,
                peak_tflops=args.peak_tflops, data_dir=args.data_dir, work_dir=args.work_dir)

def _sweep(args: argparse.Namespace) -> int:
    from .training.sweep import plan, slurm_script, sweep

    if args.print_slurm:
        print(slurm_script(args.preset or [], args.seeds, args.set or [], args.runs_dir, args.name or "my-sweep",
                           data_dir=args.data_dir), end="")
        return 0
    if args.dry_run:
        root, jobs = plan(args.preset or [], args.seeds, args.set or [], args.runs_dir, args.name, args.data_dir)
        for job in jobs:
            if args.only is None or job.index in args.only:
                print(" ".join(shlex.quote(a) for a in job.command()))
        return 0
    runs = sweep(args.preset or [], args.seeds, args.set or [], jobs=args.jobs, runs_dir=args.runs_dir,
                 name=args.name, only=args.only, data_dir=args.data_dir, echo=lambda line: print(line, flush=True))
    if runs:
        print(f"{len(runs)} runs in {runs[0].path.parent}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workbench", description="Train and inspect small ViTs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="train one run and print its directory")
    p.add_argument("--preset", help="named recipe (see `presets`); default: supervised")
    p.add_argument("--config", help="a config.yaml to start from (e.g. a previous run's)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="dotted override, e.g. model.depth=8 (repeatable)")
    p.add_argument("--runs-dir", help="where run directories go (default: runs)")
    p.add_argument("--data-dir", default="data", help="where generated datasets (shapes) are cached (default: data)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its checkpoints/last.ckpt "
                   "(only --set trainer.max_epochs / trainer.max_steps are allowed)")
    p.set_defaults(func=_fit)

    p = sub.add_parser("analyze", help="per-layer diagnostics of a timm ViT or a workbench run; print its directory")
    p.add_argument("--timm", metavar="NAME", help="a timm model, e.g. vit_tiny_patch16_224 (randomly initialised "
                   "unless --pretrained or --checkpoint)")
    p.add_argument("--checkpoint", metavar="FILE", help="weights: a state dict for --timm (torch.save or .safetensors), "
                   "or alone a workbench run's checkpoints/last.ckpt")
    p.add_argument("--run", metavar="RUN_DIR", help="a workbench run directory: its checkpoints/last.ckpt, on its own data")
    p.add_argument("--pretrained", action="store_true", help="timm's pretrained weights (downloads: needs internet)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                   help="argument of timm.create_model, e.g. img_size=64 (repeatable)")
    p.add_argument("--data", help="dataset name (default: shapes at the model's input size; a run's own data for --run)")
    p.add_argument("--image-size", type=int, help="input side (default: the model's)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="data.*, diagnostics.* or views.* setting, or seed, e.g. data.probe_size=1000 (repeatable)")
    p.add_argument("--out", metavar="DIR", help="the directory to write (must not exist); default: --runs-dir/--name")
    p.add_argument("--name", help="the directory's name under --runs-dir (default: analyze-<model>-<data>-<time>)")
    p.add_argument("--runs-dir", default="runs", help="where the directory goes (default: runs)")
    p.add_argument("--data-dir", default="data", help="where generated datasets (shapes) are cached (default: data)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default: 256)")
    p.set_defaults(func=_analyze)

    p = sub.add_parser("report", help="one self-contained HTML page of one run or several (no network, no kernel)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories, or a directory of runs (a sweep); "
                   "several runs add the comparison figures")
    p.add_argument("--out", default="report.html", help="the page to write (default: report.html)")
    p.add_argument("--pool", default="mean", choices=("mean", "cls"), help="embedding of the per-layer figures")
    p.add_argument("--points", type=int, default=1000, help="probe images the layer explorer lays out (default: 1000)")
    p.add_argument("--no-explorer", action="store_true", help="leave out the layer explorer (no UMAP layouts)")
    p.set_defaults(func=_report)

    p = sub.add_parser("runs", help="list run directories")
    p.add_argument("--runs-dir", default="runs")
    p.set_defaults(func=_runs)

    p = sub.add_parser("presets", help="list the named recipes")
    p.set_defaults(func=_presets)

    p = sub.add_parser("bench", help="measure this machine against plain PyTorch and torchvision (a markdown table)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that every row runs (seconds), not a measurement")
    p.add_argument("--skip-layouts", action="store_true", help="leave out the per-layer layout timing")
    p.add_argument("--out", metavar="PATH", help="also write the results: JSON for a .json path, else the markdown table")
    p.add_argument("--runs-dir", default="runs/bench", help="where the benchmark's runs go (default: runs/bench)")
    p.add_argument("--data-dir", default="data", help="where the generated shapes data is cached (default: data)")
    p.add_argument("--memory", type=int, nargs="+", metavar="N",
                   help="instead: peak memory of one diagnostics pass over N probe images, depth-12 ViT")
    p.add_argument("--controls", action="store_true",
                   help="instead: the positive controls on shapes over seeds (about 45 minutes on two cores); "
                   "exit code 1 when one does not hold")
    p.add_argument("--seeds", default="0,1,2", help="with --controls: the seeds of every recipe, e.g. 0,1,2 or 0-4 (default: 0,1,2)")
    p.add_argument("--jobs", type=int, default=2, help="with --controls: runs trained at once (default: 2)")
    p.set_defaults(func=_bench)

    p = sub.add_parser("gpucheck", help="check every GPU path (precision, compile, throughput, host syncs, "
                       "diagnostics, the notebooks' GPU scales); a markdown table")
    p.add_argument("--out", metavar="PATH", help="also write the results: JSON for a .json path, else the markdown table")
    p.add_argument("--dry-run", action="store_true", help="every part on the CPU at toy sizes, with CPU substitutes "
                   "for CUDA-only calls: checks that the command works (no GPU needed), not a measurement")
    p.add_argument("--parts", type=_parts, metavar="NAME[,NAME...]",
                   help="only these parts: precision, compile, throughput, sync, diagnostics, notebooks (default: all)")
    p.add_argument("--budget", type=float, metavar="SECONDS",
                   help="time budget of the whole check, shared by the parts (default: 450; none with --dry-run)")
    p.add_argument("--peak-tflops", type=float, metavar="TFLOPS",
                   help="the device's dense bf16 peak, for devices missing from the built-in table")
    p.add_argument("--data-dir", default="data", help="where CIFAR-10 is looked for (cifar-10-batches-py/); "
                   "random images in its format are used when it is absent (default: data)")
    p.add_argument("--work-dir", metavar="DIR", help="keep the check's runs and data here (default: a temporary "
                   "directory, removed afterwards)")
    p.set_defaults(func=_gpucheck)

    p = sub.add_parser("sweep", help="train presets x seeds, each run in its own process")
    p.add_argument("--preset", action="append", metavar="NAME", help="a preset to train (repeatable)")
    p.add_argument("--seeds", default="0", help="seeds, e.g. 0,1,2 or 0-4 (default: 0)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override for every run (repeatable)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once on this machine (default: 1)")
    p.add_argument("--runs-dir", default="runs", help="the sweep directory goes under it (default: runs)")
    p.add_argument("--data-dir", help="where the runs cache generated datasets (default: each run's `fit` default, data)")
    p.add_argument("--name", help="the sweep directory's name (default: sweep-<timestamp>; required with --only)")
    p.add_argument("--only", type=_indices, metavar="I[,J...]",
                   help="run only these job indices (0-based), e.g. --only $SLURM_ARRAY_TASK_ID")
    p.add_argument("--dry-run", action="store_true", help="print each run's command instead of running it")
    p.add_argument("--print-slurm", action="store_true", help="print a SLURM job-array script for this sweep")
    p.set_defaults(func=_sweep)
    return parser


def _indices(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of job indices") from None


def _parts(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]

def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
