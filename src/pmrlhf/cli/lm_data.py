"""``pmrlhf lm free-text-data``: the free-text preference data set with a known truth,
sampled from a language model and labelled by a stated population (docs/theory.md §6)."""

from __future__ import annotations

import json

from ..lm_experiments.commands.free_text_config import FreeTextConfig
from ..lm_experiments.data.free_text import UNFINISHED

_DEFAULT_OUT = "results/free-text"


def add_free_text_data(commands) -> None:
    """Add ``free-text-data`` to the subcommands of ``pmrlhf lm``."""
    data = commands.add_parser(
        "free-text-data",
        help="the free-text preference data set with a known truth: responses sampled from "
        "a model, pairs labelled by a stated annotator population, split by prompt "
        "(train.jsonl, test.jsonl, card.json)",
        description="Sample responses to everyday prompts from a causal LM, label every pair "
        "of a prompt's responses by the population of pmrlhf.lm_experiments.data."
        "text_population (a 'brief' and a 'reasons' group), and write the pairs in TRL's "
        "conversational layout with the exact probability that chosen beats rejected. "
        "The shipped data set (load_preference_dataset('pmrlhf/free-text')) was made with "
        "the defaults.",
    )
    data.add_argument(
        "--out",
        default=_DEFAULT_OUT,
        help="output folder; gets train.jsonl, test.jsonl and card.json",
    )
    data.add_argument(
        "--model",
        default=FreeTextConfig.model,
        help="smollm2-135m, tiny-llama, tiny-opt, a folder or a hub id",
    )
    data.add_argument(
        "--seed", type=int, default=FreeTextConfig.seed, help="seed of sampling and labels"
    )
    data.add_argument(
        "--samples", type=int, default=FreeTextConfig.samples, help="responses per prompt"
    )
    data.add_argument(
        "--max-new-tokens",
        type=int,
        default=FreeTextConfig.max_new_tokens,
        help="length limit of each response, in tokens",
    )
    data.add_argument(
        "--test-share",
        type=float,
        default=FreeTextConfig.test_share,
        help="share of the prompts held out as the test split",
    )
    data.add_argument(
        "--prompts",
        default=FreeTextConfig.prompts,
        metavar="FILE",
        help="YAML/JSON file {prompts: [question, ...]} (default: the 40 shipped prompts)",
    )
    data.add_argument(
        "--batch-prompts",
        type=int,
        default=FreeTextConfig.batch_prompts,
        help="prompts sampled together",
    )
    data.add_argument(
        "--unfinished",
        choices=UNFINISHED,
        default=FreeTextConfig.unfinished,
        help="a response the token limit cut off: cut back to its last full sentence, kept "
        "as it is, or dropped",
    )
    data.set_defaults(handler=_free_text_data)


def _free_text_data(args) -> int:
    from .._validation import check_out_dir

    config = FreeTextConfig(
        model=args.model,
        seed=args.seed,
        samples=args.samples,
        max_new_tokens=args.max_new_tokens,
        test_share=args.test_share,
        prompts=args.prompts,
        batch_prompts=args.batch_prompts,
        unfinished=args.unfinished,
    ).validate(prefix="--")
    out = check_out_dir(args.out, "--out")
    from ..lm_experiments.data.free_text import read_prompts

    read_prompts(config.prompts)  # a bad file refused before torch and the model load
    from ..lm_experiments.commands.free_text_data import make_free_text_data

    card = make_free_text_data(config, out)
    shown = {"prompts": card["prompts"], "pairs": card["pairs"], "seconds": card["seconds"]}
    print(json.dumps(shown, indent=2))
    print(f"wrote {out}/train.jsonl, test.jsonl, card.json")
    return 0
