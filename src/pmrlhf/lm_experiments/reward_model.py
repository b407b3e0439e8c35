"""Reward model: a causal-LM backbone with a scalar head, trained with the BTL loss
(docs/theory.md §1).

``loss = -log sigma(r(x, chosen) - r(x, rejected))``; the score of a response is the head
applied to the last hidden state of its final token (the end token).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .models import flush_denormals, make_optimizer
from .sequences import encode_prompt, encode_response, right_pad


class RewardModel(torch.nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        self.head = torch.nn.Linear(getattr(backbone.config, "word_embed_proj_dim", hidden), 1)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, input_ids, attention_mask):
        device = self.head.weight.device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        out = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
        )
        hidden = out.hidden_states[-1]  # (B, T, H)
        last = attention_mask.sum(-1) - 1  # (B,) right padding: index of the final real token
        return self.head(hidden[torch.arange(len(last), device=device), last]).squeeze(-1)  # (B,)

    @torch.no_grad()
    def score(
        self, tokenizer, messages, responses: list[str], *, batch_size: int = 16
    ) -> np.ndarray:
        """``r(x, y)`` for every response to one conversation."""
        self.eval()
        prompt = encode_prompt(tokenizer, messages)
        rows = [prompt + encode_response(tokenizer, r) for r in responses]
        scores = []
        for start in range(0, len(rows), batch_size):
            ids, mask = right_pad(rows[start : start + batch_size], tokenizer.pad_token_id)
            scores.append(self(ids, mask).float())
        return torch.cat(scores).cpu().numpy().astype(float)


@dataclass
class RewardConfig:
    steps: int = 100
    batch_size: int = 8
    lr: float = 5e-5
    heldout: float = 0.2


def _batch_scores(model, tokenizer, batch):
    rows = []
    for messages, chosen, rejected in batch:
        prompt = encode_prompt(tokenizer, messages)
        rows += [
            prompt + encode_response(tokenizer, chosen),
            prompt + encode_response(tokenizer, rejected),
        ]
    ids, mask = right_pad(rows, tokenizer.pad_token_id)  # (2B, T)
    scores = model(ids, mask).view(-1, 2)  # (B, 2): chosen, rejected
    return scores[:, 0] - scores[:, 1]  # (B,) BTL margin


@flush_denormals
def train_reward_model(
    backbone, tokenizer, pairs, config: RewardConfig, *, seed: int = 0, progress: bool = True
) -> tuple[RewardModel, dict]:
    """Fit a reward model on ``pairs`` of ``(messages, chosen, rejected)``.

    Returns the model and ``{"train_loss", "heldout_accuracy", "heldout_pairs"}``.

    Raises
    ------
    ValueError
        Fewer than 2 pairs, or ``heldout`` outside [0, 1).
    """
    if len(pairs) < 2:
        raise ValueError(f"pairs must hold at least 2 comparisons, got {len(pairs)}")
    if not 0 <= config.heldout < 1:
        raise ValueError(f"heldout must lie in [0, 1), got {config.heldout}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    n_held = int(round(config.heldout * len(pairs)))
    held, train = [pairs[i] for i in order[:n_held]], [pairs[i] for i in order[n_held:]]
    torch.manual_seed(seed)
    model = RewardModel(backbone)
    optimizer = make_optimizer(model, config.lr)
    model.train()
    losses = []
    for _ in tqdm(range(config.steps), desc="reward model", disable=not progress):
        batch = [train[i] for i in rng.integers(len(train), size=config.batch_size)]
        loss = -F.logsigmoid(_batch_scores(model, tokenizer, batch)).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # no stale gradients between steps or after
        losses.append(float(loss.detach()))
    model.eval()
    accuracy = float("nan")
    if held:
        with torch.no_grad():
            margins = torch.cat(
                [_batch_scores(model, tokenizer, held[i : i + 16]) for i in range(0, len(held), 16)]
            )
        accuracy = float((margins > 0).float().mean())
    return model, {
        "train_loss": float(np.mean(losses[-10:])),
        "heldout_accuracy": accuracy,
        "heldout_pairs": len(held),
    }


def synthetic_pairs(task, n_per_prompt: int, *, rng) -> list[tuple]:
    """``(messages, chosen, rejected)`` comparisons sampled from a task's population."""
    pairs = []
    for i, winners, losers in task.sample_comparisons(n_per_prompt, rng=rng):
        prompt = task.prompts[i]
        pairs += [
            (prompt.messages, prompt.candidates[w], prompt.candidates[l])
            for w, l in zip(winners, losers, strict=True)
        ]
    return pairs
