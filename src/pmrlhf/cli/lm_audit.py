"""``pmrlhf lm audit`` (a policy's implied preferences against a reward model's) and
``pmrlhf lm pairs`` (comparisons sampled from a synthetic task, audit's input format)."""

from __future__ import annotations

import json

from .._validation import DEFAULT_SEED
from ..errors import PmrlhfUserError

PAIRS_FILE = "pairs.jsonl"
"""The file ``pmrlhf lm pairs`` writes in its ``--out`` folder (``lm audit --pairs`` reads it)."""


def add_audit_and_pairs(commands) -> None:
    """Add ``audit`` and ``pairs`` to the subcommands of ``pmrlhf lm``."""
    audit = commands.add_parser(
        "audit",
        help="a policy's implied preferences against a reward model's, on preference pairs "
        "and on the policy's own samples (histogram, pairwise metrics)",
    )
    audit.add_argument("--model", required=True, help="the policy: a name, folder or hub id")
    audit.add_argument(
        "--pairs",
        required=True,
        help="JSONL file of HH-RLHF, prompt/chosen/rejected or TRL conversational pairs (lm "
        f"pairs writes OUT/{PAIRS_FILE})",
    )
    scorer = audit.add_mutually_exclusive_group(required=True)
    scorer.add_argument(
        "--reward-model",
        help="a saved reward model (sequence classifier); default: none, this or "
        "--fit-reward-model is required",
    )
    scorer.add_argument(
        "--fit-reward-model",
        action="store_true",
        help="fit one to the pairs (a copy of --model with a new head); saved in OUT/reward_model",
    )
    audit.add_argument("--out", default="results/audit", help="output folder")
    audit.add_argument(
        "--limit", type=int, help="read the first N pairs only (default: every pair)"
    )
    audit.add_argument("--prompts", type=int, default=8, help="distinct prompts to sample for")
    audit.add_argument("--samples", type=int, default=4, help="responses sampled per prompt")
    audit.add_argument(
        "--max-new-tokens", type=int, default=32, help="length limit of each sampled response"
    )
    audit.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the sampling")
    audit.add_argument(
        "--prompt-format",
        choices=("auto", "chat", "plain"),
        default="auto",
        help="how prompts reach the policy: its chat template, plain text, or auto (the chat "
        "template where the tokenizer has one)",
    )
    audit.set_defaults(handler=_audit)

    pairs = commands.add_parser(
        "pairs",
        help="comparisons sampled from a synthetic task, written as JSONL in TRL's "
        "conversational preference layout",
    )
    pairs.add_argument("--task", default="three_answers", help="built-in task name or task file")
    pairs.add_argument("--per-prompt", type=int, default=50, help="comparisons per prompt")
    pairs.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the sampling")
    pairs.add_argument(
        "--out",
        default="results/pairs",
        help=f"output folder; the pairs go to OUT/{PAIRS_FILE}, the file lm audit's --pairs takes",
    )
    pairs.set_defaults(handler=_pairs)


def _audit(args) -> int:
    from .._text_files import check_text_file
    from ..lm_experiments.commands.audit import FIGURE, audit

    check_text_file(args.pairs, name="--pairs")  # before the model is loaded

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
    from .._validation import check_out_dir, check_seed
    from ..lm_experiments.data.preference_pairs import synthetic_pairs, write_preference_pairs
    from ..lm_experiments.data.tasks import load_task

    n = args.per_prompt
    if n < 1:
        raise PmrlhfUserError(f"--per-prompt must be >= 1, got {n}")
    out = check_out_dir(args.out, "--out")  # a folder, as every other command's --out
    task = load_task(args.task)
    path = write_preference_pairs(
        out / PAIRS_FILE, synthetic_pairs(task, n, rng=check_seed(args.seed, "--seed"))
    )
    print(f"wrote {n * len(task.prompts)} pairs of task {task.name} to {path}")
    return 0
