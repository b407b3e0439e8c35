"""Reward model: a sequence-classification model with one output, trained with the BTL loss
(docs/theory.md §1) by TRL's ``RewardTrainer`` (the ``trl`` extra).

``loss = -log sigma(r(x, chosen) - r(x, rejected))``. The model is transformers'
``AutoModelForSequenceClassification`` with ``num_labels=1``, what ``RewardTrainer``
trains: saved with ``save_pretrained`` it loads in either. Its score of a response is the
head applied at the row's last token that is not padding (transformers' rule); it is
trained on the rows it scores (:func:`pair_rows`: the chat-templated prompt, the response
and the end token), given to ``RewardTrainer`` pre-tokenized.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from ..._io import atomic_save_folder
from ..._validation import DEFAULT_SEED
from ...errors import PmrlhfTypeError, PmrlhfUserError
from ..models.loading import flush_denormals, make_optimizer
from ..models.sequences import encode_prompt, encode_response, model_device, right_pad
from .reward_config import RewardConfig


def reward_model_from(backbone, tokenizer):
    """A one-output sequence-classification model of ``backbone``'s architecture: its body's
    weights copied from ``backbone`` (a causal LM), a new head. ``tokenizer`` gives the pad
    token that marks where each row ends."""
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(backbone.config)
    config.num_labels, config.pad_token_id = 1, tokenizer.pad_token_id
    model = AutoModelForSequenceClassification.from_config(config, dtype=backbone.dtype)
    body = getattr(model, model.base_model_prefix)
    body.load_state_dict(getattr(backbone, backbone.base_model_prefix).state_dict())
    return model.to(model_device(backbone))


def _scores(model, rows: list[list[int]], pad_id: int) -> torch.Tensor:
    """``r`` of each token row (prompt and response): (B,)."""
    ids, mask = right_pad(rows, pad_id)  # (B, T)
    device = model_device(model)
    return model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, 0]  # (B,)


@torch.no_grad()
def score_responses(model, tokenizer, messages, responses: list[str], *, batch_size=16):
    """``r(x, y)`` for every response to one conversation: a float array."""
    model.eval()
    prompt = encode_prompt(tokenizer, messages)
    rows = [prompt + encode_response(tokenizer, r) for r in responses]
    scores = [
        _scores(model, rows[i : i + batch_size], tokenizer.pad_token_id).float()
        for i in range(0, len(rows), batch_size)
    ]
    return torch.cat(scores).cpu().numpy().astype(float)


def pair_rows(tokenizer, pairs) -> list[tuple[list[int], list[int]]]:
    """The token rows ``(prompt + chosen, prompt + rejected)`` of each pair, as scored."""
    rows = []
    for messages, chosen, rejected in pairs:
        prompt = encode_prompt(tokenizer, messages)
        rows.append(
            (
                prompt + encode_response(tokenizer, chosen),
                prompt + encode_response(tokenizer, rejected),
            )
        )
    return rows


def pair_margins(model, tokenizer, pairs) -> torch.Tensor:
    """``r(x, chosen) - r(x, rejected)`` of each pair: (B,), the BTL logit."""
    rows = [row for pair in pair_rows(tokenizer, pairs) for row in pair]
    scores = _scores(model, rows, tokenizer.pad_token_id).view(-1, 2)  # (B, 2)
    return scores[:, 0] - scores[:, 1]  # (B,)


def check_pairs(pairs, name: str = "pairs") -> list:
    """``pairs`` as a list of ``(messages, chosen, rejected)``, e.g. ``PreferencePair``."""
    if isinstance(pairs, str | bytes) or not hasattr(pairs, "__iter__"):
        raise PmrlhfTypeError(
            f"{name} must be a list of (messages, chosen, rejected), got {pairs!r}"
        )
    pairs = list(pairs)
    for i, pair in enumerate(pairs):
        if not isinstance(pair, tuple | list) or len(pair) != 3:
            raise PmrlhfTypeError(f"{name}[{i}] must be (messages, chosen, rejected), got {pair!r}")
        messages, chosen, rejected = pair
        if not isinstance(messages, tuple | list) or not all(isinstance(m, dict) for m in messages):
            raise PmrlhfTypeError(f"{name}[{i}]: messages must be a list of chat messages")
        if not isinstance(chosen, str) or not isinstance(rejected, str):
            raise PmrlhfTypeError(f"{name}[{i}]: chosen and rejected must be strings")
    return pairs


@flush_denormals
def train_reward_model(
    backbone,
    tokenizer,
    pairs,
    config: RewardConfig,
    *,
    seed: int = DEFAULT_SEED,
    progress: bool = True,
):
    """Fit a reward model (:func:`reward_model_from` ``backbone``) on ``pairs`` of
    ``(messages, chosen, rejected)``
    (:class:`~pmrlhf.lm_experiments.data.preference_pairs.PreferencePair`) with TRL's
    ``RewardTrainer``: ``config.steps`` steps of ``config.batch_size`` pairs (epochs of the
    training pairs in a seeded order), AdamW without weight decay at the constant rate
    ``config.lr``, no gradient clipping. A share ``config.heldout`` of the pairs is kept out
    for the accuracy.

    Returns the model and ``{"train_loss", "heldout_accuracy", "heldout_pairs"}``.

    Raises
    ------
    PmrlhfTypeError
        ``pairs`` not of ``(messages, chosen, rejected)`` (a ``TypeError`` and ``ValueError``).
    PmrlhfUserError
        Fewer than 2 pairs, or a bad ``config``.
    ImportError
        TRL is not installed.
    """
    pairs = check_pairs(pairs)
    if len(pairs) < 2:
        raise PmrlhfUserError(f"pairs must hold at least 2 comparisons, got {len(pairs)}")
    config.validate()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    n_held = int(round(config.heldout * len(pairs)))
    held, train = [pairs[i] for i in order[:n_held]], [pairs[i] for i in order[n_held:]]
    torch.manual_seed(seed)
    model = reward_model_from(backbone, tokenizer)
    losses = _fit(model, tokenizer, train, config, seed=seed, progress=progress)
    model.eval()
    accuracy = float("nan")
    if held:
        with torch.no_grad():
            margins = torch.cat(
                [pair_margins(model, tokenizer, held[i : i + 16]) for i in range(0, len(held), 16)]
            )
        accuracy = float((margins > 0).float().mean())
    return model, {
        "train_loss": float(np.mean(losses[-10:])),
        "heldout_accuracy": accuracy,
        "heldout_pairs": len(held),
    }


def _fit(model, tokenizer, pairs, config: RewardConfig, *, seed: int, progress: bool) -> list:
    """Train ``model`` in place with TRL's ``RewardTrainer``; returns the loss per step."""
    import tempfile

    try:
        from datasets import Dataset
        from transformers import PrinterCallback, ProgressCallback
        from trl import RewardConfig as TRLRewardConfig
        from trl import RewardTrainer
    except ImportError as err:
        raise ImportError(
            f"the reward model is trained with TRL's RewardTrainer ({err}): "
            "pip install 'pmrlhf[trl]'"
        ) from err
    rows = [{"chosen_ids": a, "rejected_ids": b} for a, b in pair_rows(tokenizer, pairs)]
    with tempfile.TemporaryDirectory(prefix="pmrlhf-rm-") as scratch:
        args = TRLRewardConfig(
            output_dir=scratch,
            max_steps=config.steps,
            per_device_train_batch_size=config.batch_size,
            gradient_accumulation_steps=1,
            learning_rate=config.lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=0.0,
            max_length=None,
            bf16=False,  # the model's own dtype, no autocast (as before)
            use_cpu=model_device(model).type == "cpu",
            report_to="none",
            save_strategy="no",
            logging_steps=1,
            seed=seed,
            dataloader_num_workers=0,
            disable_tqdm=not progress,
        )
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            optimizers=(make_optimizer(model, config.lr), None),
        )
        if not progress:
            trainer.remove_callback(PrinterCallback)
            trainer.remove_callback(ProgressCallback)
        trainer.train()
    return [r["loss"] for r in trainer.state.log_history if "loss" in r]


def save_reward_model(model, tokenizer, folder) -> Path:
    """``save_pretrained`` of the model and its tokenizer, moved into ``folder`` whole."""

    def save(tmp):
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return atomic_save_folder(folder, save)


def check_reward_model_folder(folder) -> Path:
    """``folder`` as a path, if it holds a saved one-output sequence classifier (its
    ``config.json`` read, not its weights). Raises as :func:`load_reward_model`."""
    from transformers import AutoConfig

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"reward model {folder}: no saved model (config.json) there")
    config = AutoConfig.from_pretrained(folder)
    if not any(a.endswith("ForSequenceClassification") for a in config.architectures or []):
        raise PmrlhfUserError(
            f"reward model {folder} is not a sequence-classification model "
            f"({', '.join(config.architectures or ['no architecture'])}): fit one with "
            "--fit-reward-model or TRL's RewardTrainer"
        )
    if config.num_labels != 1:
        raise PmrlhfUserError(f"reward model {folder} has {config.num_labels} outputs, not 1")
    return folder


def load_reward_model(folder, *, dtype: str = "float32"):
    """``(model, tokenizer)`` saved by :func:`save_reward_model` (or TRL's RewardTrainer).

    Raises
    ------
    FileNotFoundError
        ``folder`` holds no saved model.
    PmrlhfUserError
        The model there is not a one-output sequence classifier (a causal LM, say, would
        get a new random head); an unknown ``dtype``.
    """
    from transformers import AutoModelForSequenceClassification

    from ..models.loading import load_tokenizer

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise PmrlhfUserError(f"dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
    folder = check_reward_model_folder(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=dtypes[dtype])
    tokenizer = load_tokenizer(str(folder))
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer
