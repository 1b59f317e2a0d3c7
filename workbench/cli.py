"""``python -m workbench fit | runs | presets | bench``."""

from __future__ import annotations

import argparse
import sys

from .errors import WorkbenchError


def _fit(args: argparse.Namespace) -> int:
    from .config import RunConfig
    from .presets import make_config
    from .train import fit

    overrides = list(args.set or [])
    if args.resume:
        if args.preset or args.config or args.runs_dir:
            from .errors import ConfigError

            raise ConfigError("--resume", args.resume, "a run directory alone (no --preset, --config or --runs-dir: "
                                                       "the run's config.yaml is the config)")
        print(fit(resume=args.resume, overrides=overrides).path)
        return 0
    if args.runs_dir:
        overrides.append(f"runs_dir={args.runs_dir}")
    if args.config:
        base = RunConfig.from_yaml(args.config)
        config = make_config(args.preset, overrides, base=base)
    else:
        config = make_config(args.preset or "supervised", overrides)
    run = fit(config)
    print(run.path)
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
    if args.memory:
        from .bench_memory import measure

        for n in args.memory:
            print(measure(n=n, depth=12))
        return 0
    from .bench import main

    return main()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workbench", description="Train and inspect small ViTs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="train one run and print its directory")
    p.add_argument("--preset", help="named recipe (see `presets`); default: supervised")
    p.add_argument("--config", help="a config.yaml to start from (e.g. a previous run's)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="dotted override, e.g. model.depth=8 (repeatable)")
    p.add_argument("--runs-dir", help="where run directories go (default: runs)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its checkpoints/last.ckpt "
                   "(only --set trainer.max_epochs / trainer.max_steps are allowed)")
    p.set_defaults(func=_fit)

    p = sub.add_parser("runs", help="list run directories")
    p.add_argument("--runs-dir", default="runs")
    p.set_defaults(func=_runs)

    p = sub.add_parser("presets", help="list the named recipes")
    p.set_defaults(func=_presets)

    p = sub.add_parser("bench", help="measure this machine: data generation, diagnostics cost (a markdown table)")
    p.add_argument("--memory", type=int, nargs="+", metavar="N",
                   help="instead: peak memory of one diagnostics pass over N probe images, depth-12 ViT")
    p.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
