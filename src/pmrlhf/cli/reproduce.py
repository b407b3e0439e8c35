"""``pmrlhf reproduce``: the main job."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    from ..report.pipeline import STAGE_NAMES

    parser = subparsers.add_parser(
        "reproduce", help="regenerate every result, figure and the report"
    )
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--quick", action="store_true", help="small settings (CI, minutes)")
    parser.add_argument("--force", action="store_true", help="rerun stages that are up to date")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--lm-model",
        default=None,
        help="model of the LM stage (default smollm2-135m; tiny-llama with --quick)",
    )
    parser.add_argument(
        "--stages", nargs="+", choices=STAGE_NAMES, default=None, help="run only these stages"
    )
    parser.add_argument(
        "--no-publish",
        action="store_true",
        help="leave figures/ and README.md's results block alone (full runs refresh them)",
    )
    parser.set_defaults(handler=_reproduce)


def _reproduce(args) -> int:
    from ..report import ReproduceConfig, reproduce

    config = ReproduceConfig(
        out=args.out,
        quick=args.quick,
        seed=args.seed,
        force=args.force,
        lm_model=args.lm_model,
        stages=tuple(args.stages) if args.stages else None,
        **({"figures_dir": None, "readme": None} if args.no_publish else {}),
    )
    manifest = reproduce(config)
    print(f"report: {args.out / 'REPORT.md'}  ({len(manifest['stages'])} stages recorded)")
    return 0
