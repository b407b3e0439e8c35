"""``pmrlhf lm audit``: does a policy's implied preference match a reward model's on free
text? (docs/theory.md §5)

On each preference pair ``(x, a, b)`` the policy implies ``p_pi = sigma(log pi(a|x) -
log pi(b|x))`` and the reward model ``p_r = sigma(r(x, a) - r(x, b))``; no normalizing
constant is needed. Two sets of pairs are audited:

* ``preference_pairs``: the file's own pairs (``a`` chosen, ``b`` rejected), ``log pi`` by
  teacher forcing;
* ``sampled_pairs``: every pair among ``samples`` responses the policy samples for each of
  its first ``prompts`` distinct prompts
  (:func:`~pmrlhf.lm_experiments.evaluate.freeform.evaluate_freeform`).

Outputs in ``out``, each written atomically: ``audit.json`` (the pairwise metrics of both
sets, the reward model's fit), ``audit_pairs.csv`` (``p_pi`` and ``p_r`` of every pair) and
``audit_implied_preferences.png`` (their histograms); with ``fit_reward_model`` also
``reward_model/`` (``save_pretrained``: loads as ``AutoModelForSequenceClassification``,
in TRL too).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..._io import atomic_save_figure, atomic_write_csv, atomic_write_json
from ..._lock import run_folder
from ..._validation import DEFAULT_SEED, check_count, check_out_dir, check_seed
from ...errors import PmrlhfUserError
from ..data.preference_pairs import load_preference_pairs
from ..evaluate.pairs import pair_logprobs, pair_metrics, pair_reward_margins
from ..models.loading import check_prompt_format, load_model, resolve_name
from ..train.reward_config import RewardConfig
from ..train.reward_model import (
    check_reward_model_folder,
    load_reward_model,
    save_reward_model,
)

FIGURE = "audit_implied_preferences.png"


def audit(
    model: str,
    pairs,
    out,
    *,
    reward_model=None,
    fit_reward_model: bool = False,
    rm: RewardConfig | None = None,
    limit: int | None = None,
    prompts: int = 8,
    samples: int = 4,
    max_new_tokens: int = 32,
    seed: int = DEFAULT_SEED,
    prompt_format: str = "auto",
    progress: bool = True,
) -> dict:
    """Audit ``model`` on the preference pairs of the JSONL file ``pairs`` (HH-RLHF or
    prompt/chosen/rejected,
    :func:`~pmrlhf.lm_experiments.data.preference_pairs.load_preference_pairs`) against a reward
    model: the one saved in the folder ``reward_model``, or one fitted to the pairs
    (``fit_reward_model``, settings ``rm``, a copy of ``model`` as its body).

    ``limit``: read the file's first pairs only. ``seed`` seeds the tiny models, the reward
    model's fit and the sampling. ``out`` is locked for the audit. Returns what
    ``audit.json`` holds.

    Raises
    ------
    PmrlhfUserError
        Both or neither of ``reward_model`` and ``fit_reward_model``; a bad count, seed,
        model name or prompt format (all checked before anything is read or written); a
        malformed ``pairs`` file, or a ``reward_model`` that is not a one-output sequence
        classifier.
    FileNotFoundError
        No ``pairs`` file, or no saved model in ``reward_model``.
    """
    if (reward_model is None) == (not fit_reward_model):
        raise PmrlhfUserError(
            "give a saved reward model (--reward-model DIR) or --fit-reward-model"
        )
    resolve_name(model)
    check_prompt_format(prompt_format)
    seed = check_seed(seed)
    if limit is not None:
        check_count(limit, "limit", 1)
    check_count(prompts, "prompts", 1)
    check_count(samples, "samples", 2)
    check_count(max_new_tokens, "max_new_tokens", 1)
    rm = (rm or RewardConfig()).validate()
    if reward_model is not None:
        check_reward_model_folder(reward_model)
    out = check_out_dir(out, "out")
    data = load_preference_pairs(pairs, limit=limit)  # before any model is loaded
    with run_folder(out):
        torch.manual_seed(seed)
        policy, tokenizer = load_model(model, seed=seed, prompt_format=prompt_format)
        if fit_reward_model:
            from ..train.reward_model import train_reward_model

            backbone, _ = load_model(model, seed=seed + 1, prompt_format=prompt_format)
            scorer, fit = train_reward_model(
                backbone, tokenizer, data, rm, seed=seed, progress=progress
            )
            rm_tokenizer = tokenizer
            save_reward_model(scorer, tokenizer, out / "reward_model")
            fit |= {"saved_to": str(out / "reward_model")}
        else:
            scorer, rm_tokenizer = load_reward_model(reward_model)
            fit = {"loaded_from": str(reward_model)}
        result = {
            "model": model,
            "pairs": str(pairs),
            "reward_model": fit,
            "preference_pairs": _audit_pairs(policy, tokenizer, scorer, rm_tokenizer, data),
            "sampled_pairs": _audit_samples(
                policy, tokenizer, scorer, rm_tokenizer, data, prompts=prompts,
                samples=samples, max_new_tokens=max_new_tokens, seed=seed,
            ),
        }  # fmt: skip
        return _write(out, result)


def _audit_pairs(policy, tokenizer, scorer, rm_tokenizer, data, *, batch_size: int = 16):
    """``preference_pairs``: the file's pairs, ``a`` chosen and ``b`` rejected."""
    logp = pair_logprobs(policy, tokenizer, data, batch_size=batch_size)
    return pair_metrics(
        logp, pair_reward_margins(scorer, rm_tokenizer, data, batch_size=batch_size)
    )


def _audit_samples(
    policy, tokenizer, scorer, rm_tokenizer, data, *, prompts, samples, max_new_tokens, seed
):
    """``sampled_pairs``: the policy's own responses to the file's first distinct prompts."""
    from ..evaluate.freeform import evaluate_freeform
    from ..train.reward_model import score_responses

    conversations = []
    for pair in data:
        if list(pair.messages) not in conversations:
            conversations.append(list(pair.messages))
    conversations = conversations[:prompts]

    def reward(i: int, text: str) -> float:
        return float(score_responses(scorer, rm_tokenizer, conversations[i], [text])[0])

    result = evaluate_freeform(
        policy, tokenizer, conversations, reward, samples=samples,
        max_new_tokens=max_new_tokens, seed=seed,
    )  # fmt: skip
    return {"prompts": len(conversations), "samples_per_prompt": samples, **result}


def _write(out: Path, result: dict) -> dict:
    """The three outputs; returns what ``audit.json`` holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from ..evaluate.freeform import implied_preference_figure

    data, sampled = result["preference_pairs"], result["sampled_pairs"]
    views = {  # panel titles: which pairs, how many
        f"{data['pairs']} preference pairs (a chosen)": data,
        f"{len(sampled['implied']['policy'])} pairs of the policy's samples": sampled,
    }
    rows = [
        {"pairs": name, "pair": i, "p_policy": p, "p_reward": r}
        for name, view in (("preference_pairs", data), ("sampled_pairs", sampled))
        for i, (p, r) in enumerate(
            zip(view["implied"]["policy"], view["implied"]["reward"], strict=True)
        )
    ]
    atomic_write_csv(out / "audit_pairs.csv", pd.DataFrame(rows))
    figure = implied_preference_figure(views)
    atomic_save_figure(out / FIGURE, figure)
    plt.close(figure)
    summary = dict(result)
    for name in ("preference_pairs", "sampled_pairs"):  # the pairs themselves: in the CSV
        summary[name] = {k: v for k, v in result[name].items() if k != "implied"}
    atomic_write_json(out / "audit.json", summary)
    return summary
