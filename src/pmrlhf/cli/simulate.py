"""``pmrlhf simulate``: the synthetic preference-collapse experiments."""

from __future__ import annotations

from .._validation import DEFAULT_SEED

# The names of pmrlhf.simulate.experiments.EXPERIMENTS, in its order (a test checks they
# agree): importing that package takes seconds, too slow for building every command's parser.
EXPERIMENT_NAMES = (
    "collapse",
    "finite_data",
    "heterogeneous",
    "token_tree",
    "pairwise_vs_rankings",
    "biased_reference",
    "implied_preferences",
    "beta_alpha_grid",
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="run synthetic collapse simulations; write CSV, PNG (and PDF) and summary.json",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"experiments to run (default: all {len(EXPERIMENT_NAMES)}): "
        + ", ".join(EXPERIMENT_NAMES),
    )
    # A str, checked by check_out_dir: Path("") would be "." and write into the current folder.
    parser.add_argument("--out", default="results/simulate", help="output folder")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of every experiment")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test, not a result: smaller grids, fewer seeds and steps (CI)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="discard the results in --out made with another --seed or --quick (refused "
        "otherwise); results of the same seed are always kept beside the new ones",
    )
    parser.set_defaults(handler=_simulate)


def _simulate(args) -> int:
    from .._validation import check_out_dir
    from ..simulate.runner import check_names, run_experiments

    names = check_names(args.names)  # fails before any work on a typo
    out = check_out_dir(args.out, "--out")
    summary = run_experiments(
        names, out_dir=out, seed=args.seed, quick=args.quick, force=args.force
    )
    for name in names:
        result = summary["experiments"][name]
        numbers = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in result.items()
            if k not in ("config", "seconds")
        )
        print(f"{name:<22} {result['seconds']:7.1f} s  {numbers}")
    files = [f"{name}.{ext}" for name in names for ext in ("csv", "pdf", "png")]
    print(f"wrote to {out}: {', '.join([*files, 'summary.json'])}")
    return 0
