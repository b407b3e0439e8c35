"""``pmrlhf lm paper``: the paper's experiment on free text, stage by stage
(:mod:`pmrlhf.trl.paper`)."""

from __future__ import annotations

from pathlib import Path

from ..lm_experiments.commands.paper_config import STAGES


def add_paper(commands) -> None:
    """Add ``paper`` to the subcommands of ``pmrlhf lm``."""
    paper = commands.add_parser(
        "paper",
        help="the paper's experiment on free text: preference pairs -> SFT -> reward model -> "
        "RL with KL / PM / cPM (TRL) -> preference audit",
        description="Preference pairs -> SFT (TRL's SFTTrainer) -> reward model (TRL's "
        "RewardTrainer) -> RL per method and seed (PMRLOOTrainer) -> audit of the implied "
        "preferences. Finished stages with the same settings are skipped.",
    )
    paper.add_argument(
        "--config",
        type=Path,
        required=True,
        metavar="FILE",
        help="YAML/JSON with the keys of PaperConfig (model, data, seeds, methods, sft, "
        "reward, rl, audit; see lm_experiments/configs/paper-*.yaml)",
    )
    paper.add_argument(
        "--out", required=True, help="output folder; one process at a time per folder"
    )
    paper.add_argument(
        "--stages",
        nargs="+",
        choices=STAGES,
        default=list(STAGES),
        help="the stages to run; each needs the earlier ones finished with the same settings "
        f"(default: {' '.join(STAGES)})",
    )
    paper.add_argument(
        "--restart",
        action="store_true",
        help="rerun the given stages even where they finished with the same settings",
    )
    paper.set_defaults(handler=_paper)


def _paper(args) -> int:
    import json

    from ..lm_experiments.commands.paper_config import PaperConfig
    from ..trl.paper import run_paper

    config = PaperConfig.from_file(args.config, name="--config")
    results = run_paper(config, args.out, stages=args.stages, restart=args.restart)
    audit = results.get("audit")
    if audit and "policies" in audit:
        shown = {
            name: {k: round(v["mean"], 4) for k, v in metrics.items() if k.startswith("pairs_pmd")}
            for name, metrics in audit["policies"].items()
        }
        print(json.dumps(shown, indent=2))
    print(f"wrote {args.out}: {', '.join(n for n, r in results.items() if r)}")
    return 0
