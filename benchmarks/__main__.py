"""``python -m benchmarks``: run the benchmarks, write raw results and BENCHMARKS.md.

    python -m benchmarks                       # full (about 45 minutes on 2 quiet cores)
    python -m benchmarks --quick               # small sizes, a few minutes at most
    python -m benchmarks --parts closed_forms,reward_fitting --quick
    python -m benchmarks --parts rl_step --rl-settings long   # one RL setting only
    python -m benchmarks --parts trl_penalty   # PMRLOOTrainer beside TRL's RLOOTrainer
    python -m benchmarks --report-only         # rebuild BENCHMARKS.md from stored results

Raw results go to ``benchmarks/results/<part>.json`` (and ``.csv`` tables); BENCHMARKS.md
and ``benchmarks/benchmarks.png`` are generated from those files only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PARTS = ("closed_forms", "reward_fitting", "rl_step", "simulate", "trl_penalty")
ROOT = Path(__file__).resolve().parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_const", const="quick", dest="size", help="small sizes (minutes)"
    )
    size.add_argument(
        "--smoke",
        action="store_const",
        const="smoke",
        dest="size",
        help="tiny sizes, for tests (seconds; numbers mean nothing)",
    )
    parser.set_defaults(size="full")
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated subset of: {', '.join(PARTS)} (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rl-settings",
        default="long,task8,default",
        help="rl_step: comma-separated settings to run, of: long (2 prompts x 4 samples, at most "
        "16 new tokens), task8 (2 prompts of the default task x 4 samples), default (the LM "
        "comparison's default RLConfig: 4 prompts x k samples, the task's new-token cap); "
        "default: all three",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("BENCHMARKS.md"), help="the Markdown report to write"
    )
    parser.add_argument("--results-dir", type=Path, default=ROOT / "results")
    parser.add_argument("--figure", type=Path, default=ROOT / "benchmarks.png")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="do not run anything; rebuild the report from --results-dir",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        print(
            f"python -m benchmarks: unknown part(s) {unknown}; choose from {', '.join(PARTS)}",
            file=sys.stderr,
        )
        return 2
    rl_settings = [s.strip() for s in args.rl_settings.split(",") if s.strip()]
    bad = [s for s in rl_settings if s not in ("long", "task8", "default")]
    if bad or not rl_settings:
        print(
            f"python -m benchmarks: unknown --rl-settings {bad}; choose from long, task8, default",
            file=sys.stderr,
        )
        return 2
    if args.seed < 0:
        print(f"python -m benchmarks: --seed must be >= 0, got {args.seed}", file=sys.stderr)
        return 2
    from .report import write_report
    from .run import run_parts

    if not args.report_only:
        argv_text = " ".join(sys.argv[1:] if argv is None else argv)
        run_parts(
            parts,
            size=args.size,
            seed=args.seed,
            results_dir=args.results_dir,
            command=f"python -m benchmarks {argv_text}".strip(),
            options={"rl_step": {"settings": rl_settings}},
        )
    write_report(args.results_dir, out=args.out, figure=args.figure)
    print(f"wrote {args.out} and {args.figure} from {args.results_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
