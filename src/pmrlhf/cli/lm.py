"""``pmrlhf lm run``, ``lm trl``, ``lm compare``, ``lm audit`` and ``lm pairs``."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import PmrlhfUserError


def register(subparsers) -> None:
    lm = subparsers.add_parser("lm", help="RL fine-tuning of causal language models")
    commands = lm.add_subparsers(dest="lm_command", metavar="LM_COMMAND")

    run = commands.add_parser(
        "run",
        help="one RL run (optionally after SFT) from options, an optional config file, or both",
        description="One RL run (optionally after SFT). Settings come from RunConfig's "
        "defaults, then --config FILE if given, then the options below.",
    )
    run.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="optional YAML/JSON with keys of RunConfig (see README); options override it",
    )
    run.add_argument("--model", help="smollm2-135m, tiny-llama, tiny-opt, a folder or a hub id")
    run.add_argument("--task", help="built-in task name or task file")
    run.add_argument("--regularizer", choices=("kl", "pm", "cpm"))
    run.add_argument("--beta", type=float)
    run.add_argument("--alpha", type=float)
    run.add_argument("--steps", type=int)
    run.add_argument(
        "--penalty-gradient",
        choices=("expected", "sampled"),
        help="rl.penalty_gradient (docs/theory.md §4; default expected)",
    )
    run.add_argument("--sft-steps", type=int)
    run.add_argument(
        "--reward",
        choices=("oracle", "rm"),
        help="exact task reward, or a reward model fitted to sampled comparisons",
    )
    run.add_argument("--seed", type=int)
    # A str, checked by check_out_dir: Path("") would be "." and write into the current folder.
    run.add_argument(
        "--out",
        default=None,
        help="run folder (default runs/<name>); one process at a time per folder",
    )
    again = run.add_mutually_exclusive_group()
    again.add_argument(
        "--resume", action="store_true", help="continue from the run folder's checkpoint"
    )
    again.add_argument(
        "--restart",
        action="store_true",
        help="discard the run folder's previous run (metrics, checkpoint, eval, config) "
        "and start again",
    )
    run.set_defaults(handler=_run)

    trl = commands.add_parser(
        "trl",
        help="one RL run with TRL's trainer (pmrlhf.trl), scored like lm run (same eval.json)",
    )
    trl.add_argument(
        "--config", type=Path, help="optional YAML/JSON with keys of RunConfig (see README)"
    )
    trl.add_argument("--model", help="smollm2-135m, tiny-llama, tiny-opt, a folder or a hub id")
    trl.add_argument("--task", help="built-in task name or task file")
    trl.add_argument(
        "--trainer",
        choices=("rloo", "grpo"),
        default="rloo",
        help="PMRLOOTrainer (default) or PMGRPOTrainer",
    )
    trl.add_argument("--regularizer", choices=("kl", "pm", "cpm"))
    trl.add_argument("--beta", type=float)
    trl.add_argument("--alpha", type=float, help="conditional PM's threshold (TRL: cpm_alpha)")
    trl.add_argument("--steps", type=int)
    trl.add_argument("--sft-steps", type=int)
    trl.add_argument("--seed", type=int)
    trl.add_argument(
        "--eval-every",
        type=int,
        default=10,
        help="exact candidate evaluation every N steps, logged to metrics.jsonl (0: only at "
        "the end; default 10)",
    )
    trl.add_argument(
        "--out",
        default=None,
        help="run folder (default runs/<name>-trl-<trainer>); one process at a time per folder",
    )
    trl.add_argument("--restart", action="store_true", help="discard the run folder's previous run")
    trl.set_defaults(handler=_trl)

    compare = commands.add_parser("compare", help="KL vs PM vs conditional PM from one start")
    compare.add_argument("--task", default="three_answers")
    compare.add_argument("--model", default="smollm2-135m")
    compare.add_argument(
        "--out", default="results/lm", help="output folder; one process at a time per folder"
    )
    compare.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="one SFT reference and one RL run per method for each seed (default 0 1 2; "
        "--quick: 0 1); means with 95%% t-intervals",
    )
    compare.add_argument("--steps", type=int, default=None, help="RL steps per method")
    compare.add_argument(
        "--penalty-gradient",
        choices=("expected", "sampled"),
        help="the penalty's gradient (docs/theory.md §4): its exact expectation over the "
        "vocabulary at each sampled history (default), or the sampled tokens' penalty in the "
        "return (as TRL)",
    )
    compare.add_argument("--quick", action="store_true", help="a few steps (tests, CI)")
    compare.add_argument(
        "--betas",
        type=float,
        nargs="+",
        help="grid mode: KL and PM at each beta, conditional PM at each (beta, alpha)",
    )
    compare.add_argument(
        "--alphas", type=float, nargs="+", help="grid mode: conditional-PM thresholds"
    )
    compare.add_argument(
        "--restart",
        action="store_true",
        help="retrain every method (default: reuse methods already finished in --out with "
        "the same settings and code, e.g. after an interruption)",
    )
    compare.set_defaults(handler=_compare)

    audit = commands.add_parser(
        "audit",
        help="a policy's implied preferences against a reward model's, on preference pairs "
        "and on the policy's own samples (histogram, pairwise metrics)",
    )
    audit.add_argument("--model", required=True, help="the policy: a name, folder or hub id")
    audit.add_argument(
        "--pairs", required=True, help="JSONL of HH-RLHF or prompt/chosen/rejected pairs"
    )
    scorer = audit.add_mutually_exclusive_group(required=True)
    scorer.add_argument("--reward-model", help="a saved reward model (sequence classifier)")
    scorer.add_argument(
        "--fit-reward-model",
        action="store_true",
        help="fit one to the pairs (a copy of --model with a new head); saved in OUT/reward_model",
    )
    audit.add_argument("--out", default="results/audit", help="output folder")
    audit.add_argument("--limit", type=int, help="read the first N pairs only")
    audit.add_argument("--prompts", type=int, default=8, help="distinct prompts to sample for")
    audit.add_argument("--samples", type=int, default=4, help="responses sampled per prompt")
    audit.add_argument("--max-new-tokens", type=int, default=32)
    audit.add_argument("--seed", type=int, default=0)
    audit.add_argument("--prompt-format", choices=("auto", "chat", "plain"), default="auto")
    audit.set_defaults(handler=_audit)

    pairs = commands.add_parser(
        "pairs", help="comparisons sampled from a synthetic task, written as HH-RLHF JSONL"
    )
    pairs.add_argument("--task", default="three_answers", help="built-in task name or task file")
    pairs.add_argument("--per-prompt", type=int, default=50, help="comparisons per prompt")
    pairs.add_argument("--seed", type=int, default=0)
    pairs.add_argument("--out", required=True, help="the JSONL file to write")
    pairs.set_defaults(handler=_pairs)
    lm.set_defaults(handler=lambda args: _usage(lm))


def _usage(parser) -> int:
    parser.print_help()
    return 2


def _run(args) -> int:
    from .._validation import check_out_dir
    from ..lm_experiments.runs import RunConfig, run_one

    config = RunConfig.from_file(args.config) if args.config else RunConfig()
    top = {"model": args.model, "task": args.task, "seed": args.seed, "reward": args.reward}
    rl = {
        "regularizer": args.regularizer,
        "beta": args.beta,
        "alpha": args.alpha,
        "steps": args.steps,
        "penalty_gradient": args.penalty_gradient,
    }
    config = config.with_overrides(top, rl, {"steps": args.sft_steps})
    config.validate()  # before anything is written or loaded
    out = check_out_dir(args.out if args.out is not None else Path("runs") / config.name(), "--out")
    result = run_one(config, out, resume=args.resume, restart=args.restart)
    if not result:  # a non-main process of a multi-process launch: the main one reports
        return 0
    keys = ("kl_to_target", "tv_to_target", "coverage", "pairwise_pmd", "minority_mass")
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    print(f"run folder: {out}")
    return 0


def _trl(args) -> int:
    from .._validation import check_out_dir
    from ..lm_experiments.runs import RunConfig

    config = RunConfig.from_file(args.config) if args.config else RunConfig()
    top = {"model": args.model, "task": args.task, "seed": args.seed}
    rl = {
        "regularizer": args.regularizer,
        "beta": args.beta,
        "alpha": args.alpha,
        "steps": args.steps,
    }
    config = config.with_overrides(top, rl, {"steps": args.sft_steps})
    config.validate()  # before anything is written or loaded
    default = Path("runs") / f"{config.name()}-trl-{args.trainer}"
    out = check_out_dir(args.out if args.out is not None else default, "--out")
    try:
        from ..trl.run import run_trl
    except ImportError as err:  # TRL missing or at an untested version: the message says so
        raise PmrlhfUserError(str(err).splitlines()[0]) from None
    result = run_trl(
        config, out, trainer=args.trainer, eval_every=args.eval_every, restart=args.restart
    )
    keys = ("kl_to_target", "tv_to_target", "coverage", "pairwise_pmd", "minority_mass")
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    print(f"run folder: {out}")
    return 0


def _compare(args) -> int:
    from dataclasses import replace

    from .._validation import check_out_dir
    from ..lm_experiments import CompareConfig, console_table, quick_config, run_compare
    from ..lm_experiments.compare import grid_methods
    from ..lm_experiments.plots import FIGURES

    config = (
        quick_config(args.task, args.model)
        if args.quick
        else CompareConfig(task=args.task, model=args.model)
    )
    if args.seeds is not None:
        config.seeds = tuple(args.seeds)
    if (args.betas is None) != (args.alphas is None):
        raise PmrlhfUserError("--betas and --alphas go together (grid mode)")
    if args.betas is not None:
        config.methods = grid_methods(args.betas, args.alphas)
    if args.steps is not None:
        config.rl = replace(config.rl, steps=args.steps)
    if args.penalty_gradient is not None:
        config.rl = replace(config.rl, penalty_gradient=args.penalty_gradient)
    config.validate()  # before anything is written or loaded
    out = check_out_dir(args.out, "--out")
    summary = run_compare(config, out, resume=not args.restart)
    print(console_table(summary))
    print(
        f"wrote {out}/summary.json, summary.csv, {', '.join(FIGURES)} "
        f"({summary['compute_seconds']:.0f} s of compute)"
    )
    return 0


def _audit(args) -> int:
    from ..lm_experiments.audit import FIGURE, audit

    result = audit(
        args.model,
        args.pairs,
        args.out,
        reward_model=args.reward_model,
        fit_reward_model=args.fit_reward_model,
        limit=args.limit,
        prompts=args.prompts,
        samples=args.samples,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        prompt_format=args.prompt_format,
    )
    keys = ("pairwise_pmd", "abs_preference_gap", "policy_prefers_chosen", "reward_prefers_chosen")
    shown = {
        "preference_pairs": {k: result["preference_pairs"][k] for k in keys},
        "sampled_pairs": {k: result["sampled_pairs"][k] for k in ("pairwise_pmd", "mean_reward")},
    }
    print(json.dumps(shown, indent=2))
    print(f"wrote {args.out}/audit.json, audit_pairs.csv, {FIGURE}")
    return 0


def _pairs(args) -> int:
    from .._validation import check_seed
    from ..lm_experiments.data import synthetic_pairs, write_preference_pairs
    from ..lm_experiments.tasks import load_task

    n = args.per_prompt
    if n < 1:
        raise PmrlhfUserError(f"--per-prompt must be >= 1, got {n}")
    task = load_task(args.task)
    path = write_preference_pairs(
        args.out, synthetic_pairs(task, n, rng=check_seed(args.seed, "--seed"))
    )
    print(f"wrote {n * len(task.prompts)} pairs of task {task.name} to {path}")
    return 0
