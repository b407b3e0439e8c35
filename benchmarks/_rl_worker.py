"""One side of the RL-step benchmark, in its own process (so peak memory is its own).

    python -m benchmarks._rl_worker --side {pmrlhf,trl} --model NAME --steps N --warmup W \
        --seed S --json OUT

Both sides: the same model (loaded by ``pmrlhf.lm_experiments.load_model``), the same two
chat prompts, 4 samples per prompt, completions of at most ``max_new_tokens`` tokens,
temperature 1 with no top-p / top-k, KL penalty ``beta``, AdamW at the same learning rate,
gradient clipping at 1, float32 on the CPU, and the same cheap reward (``len(text) / 100``).

Step time is measured the same way on both sides: the reward function notes the clock the
first time it is called in a step, and the time of step ``s`` is the gap between those
notes at steps ``s`` and ``s + 1`` (a full cycle: update of ``s``, sampling of ``s + 1``).
``warmup`` steps are dropped. Tokens are counted by re-tokenizing every scored completion
(plus the end token when the completion finished), identically on both sides.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

PROMPTS = (
    "Write a long story about a dragon who learns to bake bread.",
    "Explain in detail how a bicycle works, part by part.",
)
PROMPTS_PER_STEP = 2
SAMPLES_PER_PROMPT = 4
BETA = 0.05
LEARNING_RATE = 2e-5


class StepClock:
    """Notes when each step's scoring starts, and counts the completion tokens scored."""

    def __init__(self, tokenizer, completions_per_step: int, max_new_tokens: int):
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.per_step = completions_per_step
        self.calls = 0
        self.starts: list[float] = []
        self.tokens: list[int] = []

    def score(self, texts: list[str], finished: list[bool]) -> list[float]:
        for text, done in zip(texts, finished, strict=True):
            if self.calls % self.per_step == 0:
                self.starts.append(time.perf_counter())
                self.tokens.append(0)
            self.calls += 1
            ids = self.tokenizer(text, add_special_tokens=False).input_ids
            # Re-tokenizing decoded text can split differently; never count past the cap.
            self.tokens[-1] += min(len(ids) + int(done), self.max_new_tokens)
        return [len(text) / 100.0 for text in texts]


def run_pmrlhf(model, tokenizer, args, clock: StepClock) -> None:
    import copy

    from pmrlhf.lm_experiments import RLConfig, train_rl
    from pmrlhf.lm_experiments.tasks import SyntheticTask, TaskPrompt
    from pmrlhf.simulate import Population

    task = SyntheticTask(
        name="benchmark",
        prompts=tuple(
            TaskPrompt(
                ({"role": "user", "content": text},), ("yes", "no"), Population.btl([0.0, 0.0])
            )
            for text in PROMPTS
        ),
    )
    config = RLConfig(
        regularizer="kl",
        beta=BETA,
        steps=args.steps + args.warmup + 1,
        prompts_per_step=PROMPTS_PER_STEP,
        samples_per_prompt=SAMPLES_PER_PROMPT,
        max_new_tokens=args.max_new_tokens,
        lr=LEARNING_RATE,
        max_grad_norm=1.0,
    )
    reference = copy.deepcopy(model).eval()

    def reward(prompt_index, completion, completion_mask):  # (B,), (B, Tc), (B, Tc) -> (B,)
        import torch

        eos = tokenizer.eos_token_id
        finished = (completion == eos).any(-1).tolist()
        texts = tokenizer.batch_decode(
            torch.where(completion_mask.bool(), completion, eos), skip_special_tokens=True
        )
        return torch.tensor(clock.score(texts, finished))

    train_rl(model, reference, tokenizer, task, reward, config, seed=args.seed, progress=False)


def run_trl(model, tokenizer, args, clock: StepClock) -> None:
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    # TRL builds its reference model from the policy's config path: give it a real folder.
    folder = Path(getattr(model.config, "_name_or_path", "") or "")
    scratch = tempfile.TemporaryDirectory(prefix="bench-trl-")
    if not (folder / "config.json").exists():
        folder = Path(scratch.name) / "model"
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        model.config._name_or_path = str(folder)
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in PROMPTS]})
    eos = tokenizer.eos_token

    def reward(prompts, completions, **kwargs):
        texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
        ids = kwargs.get("completion_ids") or [[]] * len(texts)
        finished = [bool(i) and i[-1] == tokenizer.eos_token_id for i in ids]
        texts = [t.removesuffix(eos) if eos else t for t in texts]
        return clock.score(texts, finished)

    config = RLOOConfig(
        output_dir=str(Path(scratch.name) / "out"),
        per_device_train_batch_size=PROMPTS_PER_STEP * SAMPLES_PER_PROMPT,
        num_generations=SAMPLES_PER_PROMPT,
        max_completion_length=args.max_new_tokens,
        max_steps=args.steps + args.warmup + 1,
        learning_rate=LEARNING_RATE,
        beta=BETA,
        num_iterations=1,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        max_grad_norm=1.0,
        gradient_checkpointing=False,
        bf16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=10_000,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=args.seed,
    )
    trainer = RLOOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    trainer.train()
    scratch.cleanup()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._rl_worker")
    parser.add_argument("--side", choices=("pmrlhf", "trl"), required=True)
    parser.add_argument("--model", default="tiny-llama")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)

    import torch

    from pmrlhf._io import atomic_write_json
    from pmrlhf.lm_experiments import load_model

    torch.manual_seed(args.seed)
    started = time.perf_counter()
    model, tokenizer = load_model(args.model, seed=args.seed)
    load_seconds = time.perf_counter() - started
    clock = StepClock(tokenizer, PROMPTS_PER_STEP * SAMPLES_PER_PROMPT, args.max_new_tokens)
    started = time.perf_counter()
    (run_pmrlhf if args.side == "pmrlhf" else run_trl)(model, tokenizer, args, clock)
    train_seconds = time.perf_counter() - started
    # Steps warmup .. warmup+steps-1, each measured up to the next step's scoring.
    starts, tokens = clock.starts, clock.tokens
    step_seconds = [starts[i + 1] - starts[i] for i in range(args.warmup, len(starts) - 1)]
    step_tokens = tokens[args.warmup : len(starts) - 1]
    atomic_write_json(
        args.json,
        {
            "side": args.side,
            "model": args.model,
            "seed": args.seed,
            "steps_recorded": len(step_seconds),
            "step_seconds": step_seconds,
            "step_tokens": step_tokens,
            "load_seconds": load_seconds,
            "train_seconds": train_seconds,
            "torch_threads": torch.get_num_threads(),
            "peak_rss_mib_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
