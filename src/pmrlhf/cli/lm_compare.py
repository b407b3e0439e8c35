"""``pmrlhf lm compare``: KL vs PM vs conditional PM from one reference, several seeds."""

from __future__ import annotations

from ..errors import PmrlhfUserError
from ..lm_experiments.commands.compare_config import CompareConfig, quick_config
from ..lm_experiments.models.precision import PRECISIONS

_PRECISION_HELP = (
    "rl.precision and sft.precision: float32 throughout, bfloat16 matmuls under autocast "
    "(weights, optimizer and loss in float32), or auto: bf16 where the device has native "
    "bfloat16 (AVX-512 BF16 or AMX CPUs, recent GPUs), else fp32 (default fp32)"
)


def add_compare(commands) -> None:
    """Add ``compare`` to the subcommands of ``pmrlhf lm``."""
    full, quick = CompareConfig(), quick_config()  # the defaults, owned there
    compare = commands.add_parser("compare", help="KL vs PM vs conditional PM from one start")
    compare.add_argument("--task", default=full.task, help="built-in task name or task file")
    compare.add_argument(
        "--model",
        default=full.model,
        help="smollm2-135m, tiny-llama, tiny-opt, a folder or a hub id",
    )
    compare.add_argument(
        "--out", default="results/lm", help="output folder; one process at a time per folder"
    )
    compare.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="one SFT reference and one RL run per method for each seed (default "
        f"{_spaced(full.seeds)}; --quick: {_spaced(quick.seeds)}); means with 95%% t-intervals",
    )
    compare.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"RL steps per method (default {full.rl.steps}; --quick: {quick.rl.steps})",
    )
    compare.add_argument(
        "--samples-per-prompt",
        type=int,
        default=None,
        help=f"RLOO samples of each prompt per step (default {full.rl.samples_per_prompt}; "
        f"--quick: {quick.rl.samples_per_prompt})",
    )
    compare.add_argument(
        "--penalty-gradient",
        choices=("expected", "sampled"),
        help="the penalty's gradient (docs/theory.md §4): its exact expectation over the "
        "vocabulary at each sampled history (default), or the sampled tokens' penalty in the "
        "return (as TRL)",
    )
    compare.add_argument("--precision", choices=PRECISIONS, help=_PRECISION_HELP)
    compare.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke test, not a result: {len(quick.seeds)} seeds, {quick.sft.steps} SFT and "
        f"{quick.rl.steps} RL steps of {quick.rl.samples_per_prompt} samples (tests, CI)",
    )
    compare.add_argument(
        "--methods",
        nargs="+",
        metavar="REG:BETA[:ALPHA]",
        help="the methods to train, e.g. kl:1 cpm:1:0.1 cpm:1:0.2 (named 'KL b=1', "
        "'cPM b=1 a=0.1'; beta weighs the penalty: PM's optimum is softmax(r / beta)); "
        "default: kl:0.1 kl:1 pm:1 cpm:1:0.1",
    )
    compare.add_argument(
        "--betas",
        type=float,
        nargs="+",
        help="grid mode: KL and PM at each beta, conditional PM at each (beta, alpha) "
        "(default: off, --methods)",
    )
    compare.add_argument(
        "--alphas",
        type=float,
        nargs="+",
        help="grid mode: conditional-PM thresholds (default: off; goes with --betas)",
    )
    compare.add_argument(
        "--restart",
        action="store_true",
        help="retrain every method (default: reuse methods already finished in --out with "
        "the same settings and code, e.g. after an interruption)",
    )
    compare.set_defaults(handler=_compare)


def _spaced(values) -> str:
    return " ".join(map(str, values))


def _compare(args) -> int:
    from dataclasses import replace

    from .._validation import check_out_dir
    from ..lm_experiments import CompareConfig, console_table, quick_config, run_compare
    from ..lm_experiments.commands.compare_config import grid_methods, parse_methods
    from ..lm_experiments.evaluate.plots import FIGURES

    config = (
        quick_config(args.task, args.model)
        if args.quick
        else CompareConfig(task=args.task, model=args.model)
    )
    if args.seeds is not None:
        config.seeds = tuple(args.seeds)
    if (args.betas is None) != (args.alphas is None):
        raise PmrlhfUserError("--betas and --alphas go together (grid mode)")
    if args.betas is not None and args.methods is not None:
        raise PmrlhfUserError("--methods and --betas/--alphas exclude each other")
    if args.betas is not None:
        config.methods = grid_methods(args.betas, args.alphas)
    if args.methods is not None:
        config.methods = parse_methods(args.methods)
    if args.steps is not None:
        config.rl = replace(config.rl, steps=args.steps)
    if args.samples_per_prompt is not None:
        config.rl = replace(config.rl, samples_per_prompt=args.samples_per_prompt)
    if args.penalty_gradient is not None:
        config.rl = replace(config.rl, penalty_gradient=args.penalty_gradient)
    if args.precision is not None:
        config.rl = replace(config.rl, precision=args.precision)
        config.sft = replace(config.sft, precision=args.precision)
    config.validate()  # before anything is written or loaded
    out = check_out_dir(args.out, "--out")
    summary = run_compare(config, out, resume=not args.restart)
    print(console_table(summary))
    print(
        f"wrote {out}/summary.json, summary.csv, {', '.join(FIGURES)} "
        f"({summary['compute_seconds']:.0f} s of compute)"
    )
    return 0
