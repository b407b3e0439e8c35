"""``pmrlhf simulate``: the synthetic preference-collapse experiments."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate", help="run synthetic collapse simulations; write CSV, PNG and summary.json"
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="experiments to run (default: all): collapse, finite_data, "
        "heterogeneous, token_tree, pairwise_vs_rankings",
    )
    parser.add_argument("--out", type=Path, default=Path("results/simulate"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small grids (about a minute)")
    parser.set_defaults(handler=_simulate)


def _simulate(args) -> int:
    from ..simulate.runner import check_names, run_experiments

    names = check_names(args.names)  # fails before any work on a typo
    summary = run_experiments(names, out_dir=args.out, seed=args.seed, quick=args.quick)
    for name, result in summary["experiments"].items():
        numbers = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in result.items()
            if k not in ("config", "seconds")
        )
        print(f"{name:<22} {result['seconds']:7.1f} s  {numbers}")
    print(f"wrote {args.out}/<name>.csv, <name>.png, summary.json")
    return 0
