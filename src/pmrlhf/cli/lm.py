"""``pmrlhf lm``: ``lm run`` and ``lm trl`` here; ``lm compare`` (:mod:`.lm_compare`),
``lm audit`` and ``lm pairs`` (:mod:`.lm_audit`), ``lm free-text-data`` (:mod:`.lm_data`),
``lm paper`` (:mod:`.lm_paper`)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import PmrlhfUserError
from ..lm_experiments.commands.run_config import RunConfig, default_rl
from ..lm_experiments.models.precision import PRECISIONS
from ..lm_experiments.train.rl_config import RLConfig
from ..lm_experiments.train.sft_config import SFTConfig
from .lm_audit import add_audit_and_pairs
from .lm_compare import _PRECISION_HELP, add_compare
from .lm_data import add_free_text_data
from .lm_paper import add_paper

_BETA_HELP = (
    "rl.beta, the weight of the penalty subtracted from the reward; PM's and conditional PM's "
    f"optimum is softmax(r / beta), the preference distribution at beta 1 (default "
    f"{RLConfig.beta:g})"
)
_SAMPLES_HELP = (
    f"rl.samples_per_prompt: completions of each prompt per step (default "
    f"{RLConfig.samples_per_prompt})"
)
_FROM_CONFIG = "; default: --config's value, else RunConfig's"
_MODEL_HELP = (
    "smollm2-135m, tiny-llama, tiny-opt, a folder or a hub id"
    + _FROM_CONFIG
    + f" ({RunConfig.model})"
)
_TASK_HELP = "built-in task name or task file" + _FROM_CONFIG + f" ({RunConfig.task})"
_REGULARIZER_HELP = (
    "rl.regularizer: kl (reverse KL), pm (preference matching) or cpm (conditional PM)"
    + _FROM_CONFIG
    + f" ({default_rl().regularizer} with alpha {default_rl().alpha:g}: plain pm spreads over "
    "text that is not an answer)"
)
_STEPS_HELP = "rl.steps: RL steps" + _FROM_CONFIG + f" ({RLConfig.steps})"
_SFT_STEPS_HELP = (
    "sft.steps: supervised steps before RL, 0 for none" + _FROM_CONFIG + f" ({SFTConfig.steps})"
)
_ALPHA_HELP = (
    "rl.alpha: conditional PM's threshold (--regularizer cpm only)"
    + _FROM_CONFIG
    + f" ({default_rl().alpha:g})"
)
_SEED_HELP = "the run's seed (SFT, sampling, evaluation)" + _FROM_CONFIG + f" ({RunConfig.seed})"


def _add_config_model_task(parser) -> None:
    """The first options of ``lm run`` and ``lm trl``: a config file, the model, the task."""
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="optional YAML/JSON with keys of RunConfig (see README); options override it "
        "(default: none, RunConfig's defaults)",
    )
    parser.add_argument("--model", help=_MODEL_HELP)
    parser.add_argument("--task", help=_TASK_HELP)


def register(subparsers) -> None:
    lm = subparsers.add_parser("lm", help="RL fine-tuning of causal language models")
    commands = lm.add_subparsers(dest="lm_command", metavar="LM_COMMAND")

    run = commands.add_parser(
        "run",
        help="one RL run (optionally after SFT) from options, an optional config file, or both",
        description="One RL run (optionally after SFT). Settings come from RunConfig's "
        "defaults, then --config FILE if given, then the options below.",
    )
    _add_config_model_task(run)
    run.add_argument("--regularizer", choices=("kl", "pm", "cpm"), help=_REGULARIZER_HELP)
    run.add_argument("--beta", type=float, help=_BETA_HELP)
    run.add_argument("--alpha", type=float, help=_ALPHA_HELP)
    run.add_argument("--steps", type=int, help=_STEPS_HELP)
    run.add_argument("--samples-per-prompt", type=int, help=_SAMPLES_HELP)
    run.add_argument(
        "--penalty-gradient",
        choices=("expected", "sampled"),
        help="rl.penalty_gradient (docs/theory.md §4; default expected)",
    )
    run.add_argument("--precision", choices=PRECISIONS, help=_PRECISION_HELP)
    run.add_argument("--sft-steps", type=int, help=_SFT_STEPS_HELP)
    run.add_argument(
        "--reward",
        choices=("oracle", "rm"),
        help="exact task reward, or a reward model fitted to sampled comparisons"
        + _FROM_CONFIG
        + f" ({RunConfig.reward})",
    )
    run.add_argument("--seed", type=int, help=_SEED_HELP)
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
        description="One RL run with TRL's trainer (pmrlhf.trl), scored like lm run. TRL's own "
        "field names are accepted beside this project's: --max_steps, --num_generations, "
        "--cpm_alpha, --scale_rewards, --output_dir, --save_steps, --report_to.",
    )
    _add_config_model_task(trl)
    trl.add_argument(
        "--trainer",
        choices=("rloo", "grpo"),
        default="rloo",
        help="PMRLOOTrainer (default) or PMGRPOTrainer",
    )
    trl.add_argument("--regularizer", choices=("kl", "pm", "cpm"), help=_REGULARIZER_HELP)
    trl.add_argument("--beta", type=float, help=_BETA_HELP)
    trl.add_argument(
        "--alpha",
        "--cpm_alpha",
        type=float,
        help="conditional PM's threshold (TRL: cpm_alpha)" + _FROM_CONFIG + " (none)",
    )
    trl.add_argument("--steps", "--max_steps", type=int, help=_STEPS_HELP)
    trl.add_argument("--samples-per-prompt", "--num_generations", type=int, help=_SAMPLES_HELP)
    trl.add_argument(
        "--scale-rewards",
        "--scale_rewards",
        choices=("group", "batch", "none"),
        help="GRPO's reward scaling (TRL's scale_rewards; --trainer grpo only). Default: 'none' "
        "with pm and cpm, so that the penalty keeps its weight beta and the optimum "
        "softmax(r / beta) (scaling divides reward and penalty by the group's reward std); "
        "TRL's 'group' with kl",
    )
    trl.add_argument("--sft-steps", type=int, help=_SFT_STEPS_HELP)
    trl.add_argument("--seed", type=int, help=_SEED_HELP)
    trl.add_argument(
        "--eval-every",
        type=int,
        default=10,
        help="exact candidate evaluation every N steps, logged to metrics.jsonl (0: only at "
        "the end; default 10)",
    )
    trl.add_argument(
        "--out",
        "--output_dir",
        default=None,
        help="run folder (default runs/<name>-trl-<trainer>); one process at a time per folder",
    )
    trl.add_argument(
        "--save-every",
        "--save_steps",
        type=int,
        default=10,
        help="TRL checkpoint every N steps in <out>/trainer, the latest kept, for --resume "
        "(0: none; default 10)",
    )
    trl.add_argument(
        "--report-to",
        "--report_to",
        default="none",
        help="TRL's report_to: none (default), all, tensorboard, wandb, ... (comma-separated "
        "for several)",
    )
    trl_again = trl.add_mutually_exclusive_group()
    trl_again.add_argument(
        "--resume",
        action="store_true",
        help="continue the run folder's unfinished run from its latest checkpoint (same settings)",
    )
    trl_again.add_argument(
        "--restart", action="store_true", help="discard the run folder's previous run"
    )
    trl.set_defaults(handler=_trl)

    add_compare(commands)
    add_audit_and_pairs(commands)
    add_free_text_data(commands)
    add_paper(commands)
    lm.set_defaults(handler=lambda args: _usage(lm))


def _usage(parser) -> int:
    parser.print_help()
    return 2


def _run_config(args, top: dict, rl: dict, sft: dict):
    """The ``--config`` file (or the defaults) with the options given on the command line,
    the method's options (shared by ``lm run`` and ``lm trl``) added to ``rl``; checked."""
    config = RunConfig.from_file(args.config, name="--config") if args.config else RunConfig()
    method = {
        "regularizer": args.regularizer,
        "beta": args.beta,
        "alpha": args.alpha,
        "steps": args.steps,
        "samples_per_prompt": args.samples_per_prompt,
    }
    return config.with_overrides(top, {**method, **rl}, sft).validate()


def _run(args) -> int:
    from .._validation import check_out_dir
    from ..lm_experiments.commands.single_run import run_one

    top = {"model": args.model, "task": args.task, "seed": args.seed, "reward": args.reward}
    rl = {"penalty_gradient": args.penalty_gradient, "precision": args.precision}
    sft = {"steps": args.sft_steps, "precision": args.precision}
    config = _run_config(args, top, rl, sft)  # checked before any write or load
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

    top = {"model": args.model, "task": args.task, "seed": args.seed}
    config = _run_config(args, top, {}, {"steps": args.sft_steps})
    default = Path("runs") / f"{config.name()}-trl-{args.trainer}"
    out = check_out_dir(args.out if args.out is not None else default, "--out")
    try:
        from ..trl.command import run_trl
    except ImportError as err:  # TRL missing or at an untested version: the message says so
        raise PmrlhfUserError(str(err).splitlines()[0]) from None
    result = run_trl(
        config,
        out,
        trainer=args.trainer,
        eval_every=args.eval_every,
        restart=args.restart,
        scale_rewards=args.scale_rewards,
        resume=args.resume,
        save_every=args.save_every,
        report_to=_report_to(args.report_to),
    )
    keys = ("kl_to_target", "tv_to_target", "coverage", "pairwise_pmd", "minority_mass")
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    print(f"run folder: {out}")
    return 0


def _report_to(value: str) -> str | list[str]:
    """``--report-to``: one integration as a string, several (comma-separated) as a list."""
    names = [name.strip() for name in value.split(",")]
    return names[0] if len(names) == 1 else names
