"""``pmrlhf lm free-text-data``: the free-text preference data set with a known truth
(docs/theory.md §6), made from a causal language model's samples.

Per prompt, ``samples`` responses are drawn from the model at temperature 1
(:func:`~pmrlhf.lm_experiments.models.sequences.sample_shared`: the prompt's key/value cache
shared by its samples, several prompts a batch), decoded up to the end token and stripped;
every pair of distinct non-empty responses is labelled by the population of
:mod:`pmrlhf.lm_experiments.data.text_population` (:func:`~pmrlhf.lm_experiments.data.
free_text.label_pairs`), and a share of the prompts is held out as the test split.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ... import __version__
from ..._lock import run_folder
from ...errors import PmrlhfUserError
from ..data.free_text import (
    CARD_FILE,
    FREE_TEXT_NAME,
    SPLIT_FILES,
    TRUTH_KEY,
    clean_response,
    distinct_responses,
    label_pairs,
    prompt_messages,
    read_prompts,
    split_prompts,
    write_free_text,
)
from ..data.text_population import FREE_TEXT_POPULATION, TextPopulation
from ..models.loading import flush_denormals, load_model
from ..models.sequences import (
    model_device,
    sample_conversations,
)
from .free_text_config import FreeTextConfig


@flush_denormals
@torch.no_grad()
def sample_responses(
    model, tokenizer, prompts, *, samples, max_new_tokens, seed, batch_prompts=8, progress=True
) -> tuple[list[list[str]], np.ndarray]:
    """``samples`` decoded responses of each prompt (text up to the end token, special
    tokens dropped), and whether each ended with the end token (P, samples). The same
    seed, model and batching give the same text."""
    model.eval()
    generator = torch.Generator(device=model_device(model)).manual_seed(seed)
    texts, ended = [], []
    starts = range(0, len(prompts), batch_prompts)
    for start in tqdm(starts, desc="free-text samples", unit="batch", disable=not progress):
        batch = prompts[start : start + batch_prompts]
        _, _, completion, c_mask, stopped = sample_conversations(
            model, tokenizer, [prompt_messages(p) for p in batch], samples=samples,
            max_new_tokens=max_new_tokens, generator=generator,
        )  # fmt: skip  # (P * samples, Tc)
        # Each row's tokens up to its end token; the end token itself is a special token.
        lengths = c_mask.sum(-1).tolist()
        rows = [row[:n] for row, n in zip(completion.tolist(), lengths, strict=True)]
        decoded = tokenizer.batch_decode(rows, skip_special_tokens=True)
        texts += [decoded[i : i + samples] for i in range(0, len(decoded), samples)]
        ended.append(stopped.cpu().numpy().reshape(len(batch), samples))
    return texts, np.concatenate(ended)


def build_splits(
    prompts,
    texts,
    population: TextPopulation,
    *,
    seed: int,
    test_share: float,
    ended=None,
    unfinished: str = "cut",
):
    """``(splits, stats)``: the labelled pairs of each split (``{"train": [(pair, extra),
    ...], "test": ...}``) and counts of the responses kept and dropped. ``texts[i]`` are
    prompt ``i``'s responses; ``ended[i, k]`` whether response ``k`` ended with the end
    token (default: all did), else ``unfinished`` says what becomes of it
    (:func:`~pmrlhf.lm_experiments.data.free_text.clean_response`)."""
    label_rng, split_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    train, test = split_prompts(len(prompts), test_share, split_rng)
    where = {i: "train" for i in train} | {i: "test" for i in test}
    splits = {"train": [], "test": []}
    kept, empty, repeated = [], 0, 0
    for i, prompt in enumerate(prompts):
        done = [True] * len(texts[i]) if ended is None else ended[i]
        cleaned = [
            clean_response(t, bool(d), unfinished) for t, d in zip(texts[i], done, strict=True)
        ]
        responses, e, r = distinct_responses(cleaned)
        kept += responses
        empty, repeated = empty + e, repeated + r
        rows = label_pairs(prompt, responses, population, label_rng)
        splits[where[i]] += rows
    if not splits["train"] or not splits["test"]:
        raise PmrlhfUserError(
            "too few distinct non-empty responses to form pairs in both splits; raise "
            "--samples or --max-new-tokens"
        )
    words, reason = population.features(kept) if kept else (np.zeros(1), np.zeros(1))
    stats = {
        "kept": len(kept),
        "empty_dropped": empty,  # empty, or cut off before its first full sentence
        "repeats_dropped": repeated,
        "mean_words": round(float(words.mean()), 2),
        "with_reason_marker": round(float(reason.mean()), 4),
    }
    return splits, stats


def describe(splits, population: TextPopulation) -> dict:
    """Per split and overall: pairs, the groups' disagreement
    (:meth:`TextPopulation.disagreement`) and the mean ``population_preference``."""

    def summary(rows) -> dict:
        chosen = [pair.chosen for pair, _ in rows]
        rejected = [pair.rejected for pair, _ in rows]
        truth = np.array([extra[TRUTH_KEY] for _, extra in rows])
        return {
            "pairs": len(rows),
            "group_disagreement": round(population.disagreement(chosen, rejected), 4),
            "mean_population_preference": round(float(truth.mean()), 4),
        }

    everything = [row for rows in splits.values() for row in rows]
    return {**{name: summary(rows) for name, rows in splits.items()}, "all": summary(everything)}


def make_free_text_data(
    config: FreeTextConfig,
    out,
    *,
    population: TextPopulation = FREE_TEXT_POPULATION,
    progress: bool = True,
) -> dict:
    """Sample, label, split and write the free-text data set to ``out`` (``train.jsonl``,
    ``test.jsonl``, ``card.json``, each atomically, under the folder's lock); returns the
    card.

    Raises
    ------
    PmrlhfUserError
        A bad setting (checked before the model loads), a bad prompts file, too few
        distinct responses for pairs in both splits, a busy folder.
    """
    config.validate()
    out = Path(out)
    prompts = read_prompts(config.prompts)
    with run_folder(out):
        started = time.perf_counter()
        model, tokenizer = load_model(config.model, seed=config.seed)
        loaded = time.perf_counter()
        texts, ended = sample_responses(
            model, tokenizer, prompts, samples=config.samples,
            max_new_tokens=config.max_new_tokens, seed=config.seed,
            batch_prompts=config.batch_prompts, progress=progress,
        )  # fmt: skip
        sampled = time.perf_counter()
        splits, stats = build_splits(
            prompts, texts, population, seed=config.seed, test_share=config.test_share,
            ended=ended, unfinished=config.unfinished,
        )  # fmt: skip
        card = _card(config, splits, stats, ended, population)
        card["seconds"] = {
            "load_model": round(loaded - started, 1),
            "sampling": round(sampled - loaded, 1),
        }
        write_free_text(out, splits, card)
    return card


def _card(config, splits, stats, ended, population) -> dict:
    """What made the data set and what it holds (``card.json``), but the times."""
    return {
        "name": FREE_TEXT_NAME,
        "layout": "TRL conversational preference JSONL: prompt (messages), chosen and "
        f"rejected (one assistant message each), {TRUTH_KEY} (the population's exact "
        "probability that chosen beats rejected) and group_preferences (each group's)",
        "files": {**SPLIT_FILES, "card": CARD_FILE},
        "model": config.model,
        "seed": config.seed,
        "samples_per_prompt": config.samples,
        "max_new_tokens": config.max_new_tokens,
        "temperature": 1.0,
        "unfinished": config.unfinished,
        "cleaning": "responses stripped; one cut off by the token limit (unfinished) is cut "
        "back to its last full sentence and dropped if it has none (cut), kept (keep) or "
        "dropped (drop); empty responses and repeats within a prompt dropped; every pair "
        "of a prompt's remaining responses labelled",
        "test_share": config.test_share,
        "batch_prompts": config.batch_prompts,
        "prompts": {name: len(split_prompts_of(splits, name)) for name in splits},
        "responses": {
            "sampled": int(ended.size),
            "ended_with_end_token": int(ended.sum()),
            **stats,
        },
        "pairs": describe(splits, population),
        "population": population.to_dict(),
        "pmrlhf_version": __version__,
        "command": _command(config),
    }


def split_prompts_of(splits, split: str) -> set[str]:
    """The distinct prompts of one split's pairs."""
    return {pair.messages[-1]["content"] for pair, _ in splits[split]}


def _command(config: FreeTextConfig) -> str:
    """The command line that makes the same data set."""
    options = [
        f"--model {config.model}",
        f"--seed {config.seed}",
        f"--samples {config.samples}",
        f"--max-new-tokens {config.max_new_tokens}",
        f"--test-share {config.test_share:g}",
        f"--batch-prompts {config.batch_prompts}",
    ]
    if config.unfinished != "cut":
        options.append(f"--unfinished {config.unfinished}")
    if config.prompts is not None:
        options.append(f"--prompts {config.prompts}")
    return "pmrlhf lm free-text-data --out DIR " + " ".join(options)
