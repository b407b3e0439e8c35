"""``pmrlhf reproduce``: the main job."""

from __future__ import annotations

from .._validation import DEFAULT_SEED


def register(subparsers) -> None:
    from ..report.stages import STAGE_NAMES

    parser = subparsers.add_parser(
        "reproduce", help="regenerate every result, figure and the report"
    )
    # A str, checked by check_out_dir: Path("") would be "." and write into the current folder.
    parser.add_argument("--out", default="results", help="output folder")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test, not a result: small simulation grids, fewer theory checks, and "
        "tiny-llama with 2 seeds and a few steps in the LM stage (CI)",
    )
    parser.add_argument("--force", action="store_true", help="rerun stages that are up to date")
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="first seed of every stage (the LM stage's seeds start here)",
    )
    parser.add_argument(
        "--lm-model",
        default=None,
        help="model of the LM stage (default smollm2-135m; tiny-llama with --quick)",
    )
    parser.add_argument(
        "--stages",
        nargs="+",
        choices=STAGE_NAMES,
        default=None,
        help=f"run only these stages (default: all, {' '.join(STAGE_NAMES)})",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="also copy README's figures into figures/ and rewrite README.md's results block "
        "(in the current folder, the repository root; full runs only, the maintainers' step; "
        "default: write --out only)",
    )
    parser.set_defaults(handler=_reproduce)


def _reproduce(args) -> int:
    from .._validation import check_out_dir
    from ..report import ReproduceConfig, reproduce
    from ..report.reproduce_config import PUBLISH

    out = check_out_dir(args.out, "--out")
    config = ReproduceConfig(
        out=out,
        quick=args.quick,
        seed=args.seed,
        force=args.force,
        lm_model=args.lm_model,
        stages=tuple(args.stages) if args.stages else None,
        **(PUBLISH if args.publish else {}),
    )
    manifest = reproduce(config)
    print(f"report: {out / 'REPORT.md'}  ({len(manifest['stages'])} stages recorded)")
    report = manifest["stages"].get("report", {})
    if args.publish and "report" in (config.stages or ("report",)):
        figures = report.get("published_figures", [])
        print(f"published {len(figures)} figure(s) to {PUBLISH['figures_dir']}/")
        updated = report.get("readme_updated", "no: the report stage did not run")
        if updated == str(PUBLISH["readme"]):
            print(f"rewrote the generated blocks of {updated} whose results are here")
        else:
            print(f"did not rewrite README.md's results block ({updated})")
    return 0
