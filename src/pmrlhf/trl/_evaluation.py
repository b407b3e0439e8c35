"""The exact evaluation of :class:`~pmrlhf.trl.PreferenceMatchingCallback` across processes.

In a run of several processes (``torchrun``, ``accelerate launch``) each process computes
the teacher-forced ``log pi(c|x)`` (docs/theory.md §5) of its share of the task's prompts;
the shares are all-gathered (``torch.distributed.all_gather_object``) and every process
summarises the whole task (:func:`~pmrlhf.lm_experiments.evaluate.exact.summarize_candidates`),
as one process evaluating every prompt would, up to the rounding of a different padding.

* Parameters whole on every process (DDP, DeepSpeed ZeRO-1/2): the unwrapped model runs
  locally, its share only; the gather is the one collective.
* Parameters sharded (FSDP, DeepSpeed ZeRO-3): every forward is a collective that gathers
  parameters, so the trainer's wrapped model (``trainer.model_wrapped``: the FSDP module,
  the DeepSpeed engine) runs on every process, on shares padded to one size with a repeat
  of a prompt (its result dropped): :func:`candidate_logprobs` makes the same two forward
  calls on every process (the prompts, then the candidates, each at least one token and
  the end token). Tested here with a stand-in whose every forward is a collective (DDP's
  buffer broadcast), not with FSDP or DeepSpeed themselves.
"""

from __future__ import annotations

import math

from .._validation import check_positive_int
from ..lm_experiments.evaluate.exact import summarize_candidates
from ..lm_experiments.models.loading import flush_denormals
from ..lm_experiments.models.sequences import candidate_logprobs


def process_layout() -> tuple[int, int]:
    """``(rank, world size)`` of this process: ``(0, 1)`` unless ``torch.distributed`` is
    initialised (as the trainer's accelerator does under ``torchrun``)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def parameters_sharded(trainer) -> bool:
    """Whether ``trainer`` shards the parameters across processes (FSDP, DeepSpeed ZeRO-3),
    so that a forward pass needs every process; ``False`` for anything else, ``None``
    included."""
    if getattr(trainer, "is_fsdp_enabled", False) is True:
        return True
    if getattr(trainer, "is_deepspeed_enabled", False) is True:
        from transformers.integrations import is_deepspeed_zero3_enabled

        return bool(is_deepspeed_zero3_enabled())
    return False


def prompt_shares(n_prompts: int, world: int, *, equal: bool = False) -> list[list[int]]:
    """Each process's prompt indices: ``rank, rank + world, ...`` (every index once).

    ``equal``: each share padded to ``ceil(n_prompts / world)`` indices by repeating its
    first index (prompt 0 for a share left empty), for processes that must make the same
    forward calls."""
    check_positive_int(world, "world")
    shares = [list(range(rank, n_prompts, world)) for rank in range(world)]
    if equal:
        size = math.ceil(n_prompts / world)
        shares = [share + [(share or [0])[0]] * (size - len(share)) for share in shares]
    return shares


@flush_denormals
def share_logprobs(model, tokenizer, task, indices) -> dict:
    """``{index: log pi(c|x) of prompt index's candidates}`` (float64 numpy) for the
    prompts ``indices`` (a repeat runs, its result dropped), in one
    :func:`candidate_logprobs` call; ``{}`` for no index. Leaves ``model`` in eval mode."""
    model.eval()
    if not indices:
        return {}
    logps = candidate_logprobs(model, tokenizer, [task.prompts[i] for i in indices])
    out = {}
    for index, logp in zip(indices, logps, strict=True):
        out.setdefault(index, logp.double().numpy())
    return out


def gather_shares(local: dict) -> dict:
    """Every process's ``local`` dict merged, on every process (``all_gather_object``)."""
    import torch.distributed as dist

    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, local)
    merged = {}
    for part in parts:
        for index, value in part.items():
            merged.setdefault(index, value)
    return merged


def evaluate_shared(model, tokenizer, task, *, rewards, rank: int, world: int, sharded: bool):
    """:func:`~pmrlhf.lm_experiments.evaluate.exact.evaluate_candidates` of the whole task
    on every process, each computing its share (:func:`prompt_shares`, padded when
    ``sharded``); every process must call it. ``model`` runs as given (unwrap it first
    unless sharded); its train/eval mode is left as it was."""
    share = prompt_shares(len(task.prompts), world, equal=sharded)[rank]
    training = model.training
    try:
        local = share_logprobs(model, tokenizer, task, share)
    finally:
        model.train(training)
    merged = gather_shares(local)
    missing = [i for i in range(len(task.prompts)) if i not in merged]
    if missing:
        raise RuntimeError(f"no process evaluated prompts {missing} (world size {world})")
    logps = [merged[i] for i in range(len(task.prompts))]
    return summarize_candidates(task, logps, rewards=rewards)
