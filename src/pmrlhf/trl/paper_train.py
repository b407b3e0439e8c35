"""The training stages of ``pmrlhf lm paper``, each one of TRL's trainers
(:mod:`pmrlhf.trl.paper` runs them):

* :func:`train_sft`: TRL's ``SFTTrainer`` on the chosen responses of the training pairs
  (prompt and completion, the loss on the completion only);
* :func:`train_reward`: TRL's ``RewardTrainer`` (Bradley-Terry) on the training pairs, an
  ``AutoModelForSequenceClassification`` with one output whose body is the SFT model's;
  its held-out pairwise accuracy on the test pairs;
* :func:`train_policy`: :class:`~pmrlhf.trl.PMRLOOTrainer` with one method (KL, PM or
  cPM) and seed, the SFT model as policy and reference, the reward model as TRL's
  ``reward_funcs`` (:class:`RewardModelScore`), on the distinct training prompts,
  free-text completions.

Every stage sees a conversation and a response as the project's own code tokenizes them
(:func:`~pmrlhf.lm_experiments.models.sequences.encode_prompt`: the chat template with an
empty system message; :func:`~pmrlhf.lm_experiments.models.sequences.encode_response`: the
response and the end token), the way ``lm audit`` and the audit stage score them: SFT and
the reward model get pre-tokenized rows, RL gets the prompts with that system message and a
reward function, :class:`RewardModelScore`, that scores each completion so. (TRL's own
formatting of a conversational row ends an assistant turn with whatever the chat template
puts there: for the plain HH-RLHF transcript of a base model nothing, so the SFT model
would never learn to stop and the reward head would read a token it was not trained on.)

Each saves a whole model folder (``save_pretrained``: model and tokenizer) by
:func:`save_trained`, on every process of a multi-process launch (TRL gathers sharded
weights) and written by the main one. With ``lora`` the trainers get a
``peft.LoraConfig`` and the adapters are merged into the saved model, so every stage's
folder loads as a plain model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from .._io import json_ready
from .._memory import model_shape
from .paper_memory import check_rl_step, check_sft_step, meta_shape


def _common(config, output_dir: Path, *, steps: int, lr: float, batch_size: int, seed: int) -> dict:
    """The arguments every stage's TRL config shares."""
    return dict(
        output_dir=str(output_dir),
        max_steps=steps,
        learning_rate=lr,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=1,
        bf16=config.bf16,
        gradient_checkpointing=config.gradient_checkpointing,
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        save_strategy="steps" if config.save_steps else "no",
        save_steps=config.save_steps or 500,
        save_total_limit=1,
        logging_steps=1,
        seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def _lora(config, task_type: str):
    if config.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(task_type=task_type, **config.lora)


def _dtype(config):
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
        config.dtype
    ]


def save_trained(trainer, target: Path, *, base_loader=None) -> Path:
    """``trainer``'s model and tokenizer into the folder ``target``, whole or absent: saved
    by every process into a staging folder beside it (TRL gathers sharded weights; the main
    process writes), then moved into place by the main process. A PEFT model's adapters are
    merged into ``base_loader()``'s model first (main process)."""
    from peft import PeftModel

    accelerator = trainer.accelerator
    main = accelerator.is_main_process
    staging = target.parent / f".{target.name}.saving"
    if main:
        shutil.rmtree(staging, ignore_errors=True)
    accelerator.wait_for_everyone()
    trainer.save_model(str(staging))
    if main:
        if isinstance(accelerator.unwrap_model(trainer.model), PeftModel):
            merged = PeftModel.from_pretrained(base_loader(), str(staging)).merge_and_unload()
            shutil.rmtree(staging)
            merged.save_pretrained(staging)
            trainer.processing_class.save_pretrained(staging)
        for path in (staging, *staging.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    accelerator.wait_for_everyone()
    return target


def latest_checkpoint(scratch: Path) -> str | None:
    """The newest ``checkpoint-N`` folder TRL left in ``scratch`` (None: start afresh);
    :mod:`pmrlhf.trl.paper` keeps ``scratch`` only for a stopped unit of the same settings."""
    found = [p for p in Path(scratch).glob("checkpoint-*") if p.name[11:].isdigit()]
    return str(max(found, key=lambda p: int(p.name[11:]))) if found else None


def _history(trainer) -> list[dict]:
    return json_ready(trainer.state.log_history)


def train_sft(config, pairs, target: Path, scratch: Path) -> dict:
    """SFT of ``config.model`` on the chosen responses of ``pairs``; saved to ``target``."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from ..lm_experiments.models.loading import load_model
    from ..lm_experiments.models.sequences import encode_prompt, encode_response

    seed = config.seeds[0]

    def base():
        model, _ = load_model(
            config.model, dtype=config.dtype, seed=seed, prompt_format=config.prompt_format
        )
        return model

    model, tokenizer = load_model(
        config.model, dtype=config.dtype, seed=seed, prompt_format=config.prompt_format
    )
    check_sft_step(model_shape(model), config.sft)
    rows = []
    for pair in pairs:
        prompt = encode_prompt(tokenizer, pair.messages)
        response = encode_response(tokenizer, pair.chosen)
        mask = [0] * len(prompt) + [1] * len(response)
        rows.append({"input_ids": prompt + response, "completion_mask": mask})
    s = config.sft
    args = SFTConfig(
        **_common(config, scratch, steps=s.steps, lr=s.lr, batch_size=s.batch_size, seed=seed),
        max_length=s.max_length,
        completion_only_loss=True,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=_lora(config, "CAUSAL_LM"),
    )
    trainer.train(resume_from_checkpoint=latest_checkpoint(scratch))
    save_trained(trainer, target, base_loader=base)
    return {"trainer": "trl.SFTTrainer", "pairs": len(rows), "log_history": _history(trainer)}


def _preference_rows(tokenizer, pairs) -> list[dict]:
    """``chosen_ids`` and ``rejected_ids``: the prompt and each response, as scored."""
    from ..lm_experiments.train.reward_model import pair_rows

    return [{"chosen_ids": a, "rejected_ids": b} for a, b in pair_rows(tokenizer, pairs)]


def train_reward(config, sft: Path, train, test, target: Path, scratch: Path) -> dict:
    """The reward model: TRL's ``RewardTrainer`` from the SFT folder (a one-output
    sequence classifier of its body) on ``train``; its pairwise accuracy on ``test``."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from ..lm_experiments.evaluate.pairs import pair_reward_margins
    from ..lm_experiments.models.loading import load_tokenizer

    seed = config.seeds[0]

    def base():
        return AutoModelForSequenceClassification.from_pretrained(
            sft, num_labels=1, dtype=_dtype(config)
        )

    tokenizer = load_tokenizer(str(sft))
    r = config.reward
    args = RewardConfig(
        **_common(config, scratch, steps=r.steps, lr=r.lr, batch_size=r.batch_size, seed=seed),
        max_length=r.max_length,
        model_init_kwargs={"dtype": config.dtype},
    )
    trainer = RewardTrainer(
        model=str(sft),
        args=args,
        train_dataset=Dataset.from_list(_preference_rows(tokenizer, train)),
        processing_class=tokenizer,
        peft_config=_lora(config, "SEQ_CLS"),
    )
    trainer.train(resume_from_checkpoint=latest_checkpoint(scratch))
    save_trained(trainer, target, base_loader=base)
    # TRL drops the pairs with a side over max_length tokens: say how many it trained on.
    result = {
        "trainer": "trl.RewardTrainer",
        "pairs": len(train),
        "pairs_trained_on": len(trainer.train_dataset),
        "log_history": _history(trainer),
    }
    if trainer.accelerator.is_main_process:
        from ..lm_experiments.train.reward_model import load_reward_model

        scorer, rm_tokenizer = load_reward_model(target, dtype=config.dtype)
        scorer.to(trainer.accelerator.device)
        margins = pair_reward_margins(scorer, rm_tokenizer, test)
        result |= {"test_accuracy": float((margins > 0).mean()), "test_pairs": len(test)}
    return result


def train_policy(
    config, method, seed: int, sft: Path, reward: Path, prompts, target: Path, scratch: Path
) -> dict:
    """RL of one ``method`` (a :class:`~pmrlhf.lm_experiments.train.method.Method`) at one
    ``seed`` with :class:`~pmrlhf.trl.PMRLOOTrainer`; saved to ``target``."""
    from datasets import Dataset

    from ..lm_experiments.models.loading import load_model, load_tokenizer
    from ..lm_experiments.models.sequences import encode_prompt, with_system_message
    from .config import PMRLOOConfig
    from .rloo import PMRLOOTrainer

    def base():
        return load_model(str(sft), dtype=config.dtype)[0]

    rl = config.rl
    tokenizer = load_tokenizer(str(sft))
    longest = max(len(encode_prompt(tokenizer, m)) for m in prompts)
    check_rl_step(meta_shape(sft), rl, longest, reference=method.regularizer != "pm")
    k = rl.samples_per_prompt
    args = PMRLOOConfig(
        **_common(
            config, scratch, steps=rl.steps, lr=rl.lr, batch_size=rl.prompts_per_step * k, seed=seed
        ),
        regularizer=method.regularizer,
        cpm_alpha=method.alpha,
        beta=method.beta,
        num_generations=k,
        max_completion_length=rl.max_completion_length,
        num_iterations=rl.inner_epochs,
        epsilon=rl.clip,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        model_init_kwargs={"dtype": config.dtype},
    )
    trainer = PMRLOOTrainer(
        model=str(sft),
        reward_funcs=RewardModelScore(reward, dtype=config.dtype),
        args=args,
        train_dataset=Dataset.from_list([{"prompt": with_system_message(m)} for m in prompts]),
        peft_config=_lora(config, "CAUSAL_LM"),
    )
    trainer.train(resume_from_checkpoint=latest_checkpoint(scratch))
    save_trained(trainer, target, base_loader=base)
    return {"trainer": "pmrlhf.trl.PMRLOOTrainer", "log_history": _history(trainer)}


class RewardModelScore:
    """A TRL reward function: the saved reward model's ``r(x, y)`` of each completion, the
    prompt and response tokenized as the reward model was trained (module docs). Each
    process holds its own copy, on its device."""

    __name__ = "reward_model"

    def __init__(self, folder, *, dtype: str = "float32"):
        from accelerate import PartialState

        from ..lm_experiments.train.reward_model import load_reward_model

        self.model, self.tokenizer = load_reward_model(folder, dtype=dtype)
        self.model.to(PartialState().device)

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        from ..lm_experiments.train.reward_model import score_responses

        scores, start = [], 0
        while start < len(prompts):  # each prompt's completions come in a row
            end = start
            while end < len(prompts) and prompts[end] == prompts[start]:
                end += 1
            texts = [c[0]["content"] if isinstance(c, list) else c for c in completions[start:end]]
            scores += score_responses(self.model, self.tokenizer, prompts[start], texts).tolist()
            start = end
        return scores
