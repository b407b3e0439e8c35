"""One side of the RL-step benchmarks, in its own process (so peak memory is its own).

    python -m benchmarks._rl_worker --side {pmrlhf,trl,pmtrl-kl,pmtrl-cpm,pmtrl-pm} \
        --setting {long,task8,default} --model NAME --steps N --warmup W --seed S --json OUT

Sides: ``pmrlhf`` (``train_rl``), ``trl`` (TRL's ``RLOOTrainer``) and ``pmtrl-<regularizer>``
(``pmrlhf.trl.PMRLOOTrainer`` with that regularizer, everything else as the ``trl`` side;
conditional PM with ``alpha`` = :data:`CPM_ALPHA`).

Settings (the same on both sides):

* ``long``: long answers: two long-answer chat prompts, 4 samples each, at
  most ``--max-new-tokens`` (16) new tokens, learning rate 2e-5.
* ``task8``: the same 8 samples per step (2 prompts x 4), on the first two prompts of
  ``three_answers``, at most the task's longest candidate (end token included) new tokens,
  learning rate ``RLConfig().lr``: what the step costs once the work the task does not need
  (long answers) is cut.
* ``default``: the LM comparison's default ``RLConfig``: every prompt of the task
  ``three_answers`` (4), ``RLConfig().samples_per_prompt`` samples each, at most the
  task's longest candidate (end token included) new tokens, learning rate ``RLConfig().lr``.

Both sides: the same model (loaded by ``pmrlhf.lm_experiments.load_model``), the same chat
prompts with an empty system message (as ``pmrlhf``'s ``encode_prompt`` sends them;
SmolLM2's template would otherwise add its default system prompt), temperature 1 with no
top-p / top-k, KL penalty ``beta``, AdamW at the same learning rate, gradient clipping at
1, float32 on the CPU, and the same cheap reward (completion tokens / 100).

Step time is measured the same way on both sides: the reward function notes the clock when
it is called (once per step on both sides), and the time of step ``s`` is the gap between
those notes at steps ``s`` and ``s + 1`` (a full cycle). ``warmup`` steps are dropped. Each
step records its work exactly, from token ids: the length of each distinct prompt, the
prompt of each sample and each sample's completion length (up to and including its first
end token), so that the parent can count tokens and model FLOPs
(:mod:`benchmarks.flops`).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

LONG_PROMPTS = (
    "Write a long story about a dragon who learns to bake bread.",
    "Explain in detail how a bicycle works, part by part.",
)
SETTINGS = ("long", "task8", "default")
SIDES = ("pmrlhf", "trl", "pmtrl-kl", "pmtrl-cpm", "pmtrl-pm")
BETA = 0.05
CPM_ALPHA = 0.1
LONG_LEARNING_RATE = 2e-5
LONG_SAMPLES_PER_PROMPT = 4


def setting_work(setting: str, tokenizer, max_new_tokens: int | None = None) -> dict:
    """The work of a setting: the task, samples per prompt, new-token cap, learning rate."""
    from dataclasses import replace

    from pmrlhf.lm_experiments import RLConfig
    from pmrlhf.lm_experiments.data.oracle import OracleReward
    from pmrlhf.lm_experiments.data.tasks import SyntheticTask, TaskPrompt, load_task
    from pmrlhf.simulate import Population

    if setting == "long":
        task = SyntheticTask(
            name="benchmark",
            prompts=tuple(
                TaskPrompt(
                    ({"role": "user", "content": text},),
                    ("yes", "no"),
                    Population.btl([0.0, 0.0]),
                )
                for text in LONG_PROMPTS
            ),
        )
        return {
            "task": task,
            "samples_per_prompt": LONG_SAMPLES_PER_PROMPT,
            "max_new_tokens": max_new_tokens or 16,
            "lr": LONG_LEARNING_RATE,
        }
    if setting == "task8":
        # The long setting's 8 samples per step (2 prompts x 4), on the default task.
        task = load_task("three_answers")
        task = replace(task, prompts=task.prompts[:2])
        return {
            "task": task,
            "samples_per_prompt": LONG_SAMPLES_PER_PROMPT,
            "max_new_tokens": max_new_tokens or OracleReward(task, tokenizer).max_len,
            "lr": RLConfig().lr,
        }
    if setting == "default":
        task = load_task("three_answers")
        defaults = RLConfig()
        return {
            "task": task,
            "samples_per_prompt": defaults.samples_per_prompt,
            "max_new_tokens": max_new_tokens
            or defaults.max_new_tokens
            or OracleReward(task, tokenizer).max_len,
            "lr": defaults.lr,
        }
    raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")


def rl_config(args, work: dict):
    """The RL settings of a run, on every side: KL at ``BETA``, every prompt of the
    setting's task with its samples, new-token cap and learning rate."""
    from pmrlhf.lm_experiments import RLConfig

    return RLConfig(
        regularizer="kl",
        beta=BETA,
        steps=args.steps + args.warmup + 1,
        prompts_per_step=len(work["task"].prompts),
        samples_per_prompt=work["samples_per_prompt"],
        max_new_tokens=work["max_new_tokens"],
        lr=work["lr"],
        max_grad_norm=1.0,
    )


def chat(prompt) -> list[dict]:
    """A task prompt's messages with the empty system message ``encode_prompt`` adds."""
    messages = list(prompt.messages)
    if messages and messages[0].get("role") != "system":
        messages = [{"role": "system", "content": ""}, *messages]
    return messages


class StepClock:
    """Notes when each step's scoring starts, and the work of that step in tokens."""

    def __init__(self):
        self.steps: list[dict] = []

    def record(self, prompt_of_row: list[int], completion_lengths: list[int], prompt_lengths):
        """``prompt_of_row``: task prompt index of each sample; ``prompt_lengths``: tokens
        of each task prompt. Stores distinct prompts in order of first appearance."""
        now = time.perf_counter()
        distinct = list(dict.fromkeys(prompt_of_row))
        self.steps.append(
            {
                "start": now,
                "prompts": distinct,
                "prompt_lengths": [prompt_lengths[i] for i in distinct],
                "rows_prompt": [distinct.index(i) for i in prompt_of_row],
                "completion_lengths": [int(n) for n in completion_lengths],
            }
        )


def run_pmrlhf(model, tokenizer, args, work: dict, clock: StepClock) -> None:
    import copy

    from pmrlhf.lm_experiments import train_rl
    from pmrlhf.lm_experiments.models.sequences import encode_prompt

    task = work["task"]
    lengths = [len(encode_prompt(tokenizer, p.messages)) for p in task.prompts]
    config = rl_config(args, work)
    reference = copy.deepcopy(model).eval()

    def reward(prompt_index, completion, completion_mask):  # (B,), (B, Tc), (B, Tc) -> (B,)
        counts = completion_mask.sum(-1)  # (B,)
        clock.record([int(i) for i in prompt_index], counts.tolist(), lengths)
        return counts.double() / 100.0

    train_rl(model, reference, tokenizer, task, reward, config, seed=args.seed, progress=False)


def trl_prompt_ids(tokenizer, messages) -> list[int]:
    """The prompt tokens TRL's RLOOTrainer feeds for a conversation (its own tokenisation)."""
    out = tokenizer.apply_chat_template(
        conversation=[messages], add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return list(out["input_ids"][0])


def run_trl(model, tokenizer, args, work: dict, clock: StepClock) -> None:
    from datasets import Dataset

    from pmrlhf.trl.arguments import trl_arguments

    if args.side == "trl":
        from trl import RLOOConfig, RLOOTrainer

        extra = {}
    else:  # pmtrl-<regularizer>: PMRLOOTrainer, otherwise the same run
        from pmrlhf.trl import PMRLOOConfig as RLOOConfig
        from pmrlhf.trl import PMRLOOTrainer as RLOOTrainer

        regularizer = args.side.removeprefix("pmtrl-")
        extra = {"regularizer": regularizer}
        if regularizer == "cpm":
            extra["cpm_alpha"] = CPM_ALPHA

    task = work["task"]
    # TRL builds its reference model from the policy's config path: give it a real folder.
    folder = Path(getattr(model.config, "_name_or_path", "") or "")
    scratch = tempfile.TemporaryDirectory(prefix="bench-trl-")
    if not (folder / "config.json").exists():
        folder = Path(scratch.name) / "model"
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        model.config._name_or_path = str(folder)
    conversations = [chat(p) for p in task.prompts]
    lengths = [len(trl_prompt_ids(tokenizer, c)) for c in conversations]
    index = {c[-1]["content"]: i for i, c in enumerate(conversations)}  # distinct questions
    dataset = Dataset.from_dict({"prompt": conversations})

    def reward(prompts, completions, completion_ids, **kwargs):
        counts = [len(ids) for ids in completion_ids]
        clock.record([index[p[-1]["content"]] for p in prompts], counts, lengths)
        return [n / 100.0 for n in counts]

    # The pmrlhf side's settings, as lm trl passes them to TRL; quiet and on the CPU.
    arguments = trl_arguments(
        rl_config(args, work),
        output_dir=Path(scratch.name) / "out",
        max_new_tokens=work["max_new_tokens"],
        prompts=len(task.prompts),
        seed=args.seed,
    )
    arguments |= {"use_cpu": True, "logging_steps": 10_000, "disable_tqdm": True}
    config = RLOOConfig(**arguments, **extra)
    trainer = RLOOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    trainer.train()
    scratch.cleanup()


def trl_head_all_positions(device: str = "cpu") -> bool | None:
    """Whether TRL's fused output layer scores every position (not only the completions')."""
    try:
        import torch
        from trl.kernels.chunked_logprob import _use_triton
    except ImportError:  # another TRL layout: unknown
        return None
    return not _use_triton(torch.device(device))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._rl_worker")
    parser.add_argument("--side", choices=SIDES, required=True)
    parser.add_argument("--setting", choices=SETTINGS, default="long")
    parser.add_argument("--model", default="tiny-llama")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="default: 16 (long), the task's (default)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)

    from pmrlhf._malloc import keep_freed_memory

    # Both sides alike, before torch allocates, as the `pmrlhf` command does.
    kept_freed_memory = keep_freed_memory()
    import torch

    from pmrlhf._io import atomic_write_json
    from pmrlhf.lm_experiments import load_model

    from .flops import model_dims

    torch.manual_seed(args.seed)
    started = time.perf_counter()
    model, tokenizer = load_model(args.model, seed=args.seed)
    load_seconds = time.perf_counter() - started
    dims = model_dims(model)
    work = setting_work(args.setting, tokenizer, args.max_new_tokens)
    clock = StepClock()
    started = time.perf_counter()
    (run_pmrlhf if args.side == "pmrlhf" else run_trl)(model, tokenizer, args, work, clock)
    train_seconds = time.perf_counter() - started
    # Steps warmup .. warmup+steps-1, each measured up to the next step's scoring; the last
    # recorded step is kept too (its work is part of the cycle before it).
    steps = clock.steps
    step_seconds = [
        steps[i + 1]["start"] - steps[i]["start"] for i in range(args.warmup, len(steps) - 1)
    ]
    atomic_write_json(
        args.json,
        {
            "side": args.side,
            "setting": args.setting,
            "model": args.model,
            "seed": args.seed,
            "prompts_per_step": len(work["task"].prompts),
            "samples_per_prompt": work["samples_per_prompt"],
            "max_new_tokens": work["max_new_tokens"],
            "lr": work["lr"],
            "beta": BETA,
            "cpm_alpha": CPM_ALPHA if args.side == "pmtrl-cpm" else None,
            "dims": dims,
            "trl_head_all_positions": (trl_head_all_positions() if args.side != "pmrlhf" else None),
            "warmup": args.warmup,
            "steps_recorded": len(step_seconds),
            "step_seconds": step_seconds,
            "step_tokens": [
                sum(s["completion_lengths"]) for s in steps[args.warmup : len(steps) - 1]
            ],
            "step_work": [{k: v for k, v in s.items() if k != "start"} for s in steps],
            "load_seconds": load_seconds,
            "train_seconds": train_seconds,
            "torch_threads": torch.get_num_threads(),
            "keep_freed_memory": kept_freed_memory,
            "peak_rss_mib_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
