"""TRL's GRPO example script with preference matching: ``PMGRPOConfig`` / ``PMGRPOTrainer``.

The shape of TRL's own ``trl/scripts/grpo.py`` (``TrlParser`` over ``ScriptArguments``, the
config class and ``ModelConfig``), with pmrlhf's config, whose ``--regularizer``
(``kl``, ``pm`` or ``cpm``) and ``--cpm_alpha`` choose the penalty (docs/theory.md §4)::

    python examples/trl_grpo_pm.py \\
        --model_name_or_path Qwen/Qwen2-0.5B-Instruct \\
        --reward_model_name_or_path Skywork/Skywork-Reward-V2-Qwen3-0.6B \\
        --dataset_name trl-lib/ultrafeedback-prompt \\
        --regularizer cpm --cpm_alpha 0.1 --beta 1.0 --scale_rewards none \\
        --num_generations 4 --per_device_train_batch_size 8 --output_dir grpo-cpm

``--dataset_name`` is a data set on the Hub or a local ``.json`` / ``.jsonl`` / ``.csv`` /
``.parquet`` file, with a ``prompt`` column (TRL's prompt-only format). The reward is the
sequence-classification model ``--reward_model_name_or_path``. ``--config FILE.yaml`` reads
the same fields from a YAML file. On a CPU add ``--use_cpu True --bf16 False``.

With ``pm`` / ``cpm`` the penalty enters each completion's reward before GRPO's group
normalisation; ``--scale_rewards none`` keeps the objective ``E[r] - beta E[sum_t c_t]``
exact (``PMGRPOConfig`` warns otherwise).
"""

from dataclasses import dataclass, field
from pathlib import Path

from datasets import load_dataset
from trl import ModelConfig, ScriptArguments, TrlParser, get_peft_config

from pmrlhf.trl import PMGRPOConfig, PMGRPOTrainer

LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass
class PMScriptArguments(ScriptArguments):
    reward_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Reward model (sequence classification, one label): hub id or folder."},
    )


def load_prompts(script_args):
    """The data set of ``--dataset_name``: a local file by its suffix, else by name."""
    if script_args.dataset_name is None:
        raise ValueError("--dataset_name is required (a data set name or a local file)")
    path = Path(script_args.dataset_name)
    if path.is_file():
        if path.suffix not in LOCAL_FORMATS:
            raise ValueError(
                f"--dataset_name: a local file must end in {', '.join(LOCAL_FORMATS)}, got {path}"
            )
        return load_dataset(LOCAL_FORMATS[path.suffix], data_files=str(path))
    return load_dataset(script_args.dataset_name, name=script_args.dataset_config)


def main(script_args, training_args, model_args):
    if not script_args.reward_model_name_or_path:
        raise ValueError("--reward_model_name_or_path is required")
    model_init_kwargs = dict(
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
        dtype=model_args.dtype,
    )
    model_init_kwargs.update(training_args.model_init_kwargs or {})
    training_args.model_init_kwargs = model_init_kwargs
    dataset = load_prompts(script_args)
    trainer = PMGRPOTrainer(
        model=model_args.model_name_or_path,
        reward_funcs=script_args.reward_model_name_or_path,
        args=training_args,
        train_dataset=dataset[script_args.dataset_train_split],
        eval_dataset=(
            dataset[script_args.dataset_test_split] if training_args.eval_strategy != "no" else None
        ),
        peft_config=get_peft_config(model_args),  # --use_peft: the reference is adapters off
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    return trainer


if __name__ == "__main__":
    parser = TrlParser((PMScriptArguments, PMGRPOConfig, ModelConfig))
    trainer = main(*parser.parse_args_and_config())
