"""``PreferenceMatchingCallback`` in several processes: shares of the prompts, one result.

A real two-process CPU run (``torchrun``, gloo) of ``PMRLOOTrainer``, and the pieces of
``pmrlhf.trl._evaluation`` on their own (FSDP and DeepSpeed cannot run here: their path is
checked with stand-ins).
"""

import dataclasses
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("trl")
pytest.importorskip("datasets")

import torch  # noqa: E402

from pmrlhf.lm_experiments import load_model, load_task  # noqa: E402
from pmrlhf.lm_experiments.evaluate.exact import METRICS  # noqa: E402


def _three_prompts():
    """A task of three prompts: two processes get unequal shares (2 and 1)."""
    task = load_task("three_answers")
    return dataclasses.replace(task, prompts=task.prompts[:3])


# Run by each of the two processes: argv = model folder, output folder.
CHILD = """
import dataclasses, json, sys
from pathlib import Path

import torch
from transformers import AutoTokenizer

import pmrlhf.trl._evaluation as evaluation
from pmrlhf.lm_experiments import load_task
from pmrlhf.trl import PMRLOOConfig, PMRLOOTrainer, PreferenceMatchingCallback

folder, out = sys.argv[1], Path(sys.argv[2])
calls, real = [], evaluation.candidate_logprobs

def recording(model, tokenizer, prompts):  # how many prompts this process runs
    calls.append(len(prompts))
    return real(model, tokenizer, prompts)

evaluation.candidate_logprobs = recording
task = load_task("three_answers")
task = dataclasses.replace(task, prompts=task.prompts[:3])
tok = AutoTokenizer.from_pretrained(folder)
callback = PreferenceMatchingCallback(task, every=1)
args = PMRLOOConfig(
    output_dir=str(out / "trainer"), per_device_train_batch_size=2, num_generations=2,
    max_completion_length=3, max_steps=2, learning_rate=1e-2, regularizer="pm", beta=1.0,
    bf16=False, gradient_checkpointing=False, use_cpu=True, report_to="none",
    save_strategy="no", logging_steps=1, disable_tqdm=True, seed=0,
)
trainer = PMRLOOTrainer(
    model=folder, reward_funcs=task.reward_function(tok), args=args,
    train_dataset=task.to_dataset(), processing_class=tok, callbacks=[callback],
)
trainer.train()
trained = len(calls)
trainer.save_model(str(out / "final"))


class Collective(torch.nn.Module):  # a stand-in for FSDP, a ZeRO-3 engine: a forward
    def __init__(self, module):     # needs every process (here an all-reduce)
        super().__init__()
        self.module, self.calls = module, 0

    def forward(self, **kwargs):
        torch.distributed.all_reduce(torch.ones(1))
        self.calls += 1
        return self.module(**kwargs)


trainer.model_wrapped = Collective(trainer.model)
trainer.is_fsdp_enabled = True
sharded = callback.evaluate(trainer.model, tok)
rank = trainer.accelerator.process_index
(out / f"rank{rank}.json").write_text(json.dumps({
    "history": callback.history, "log_history": trainer.state.log_history,
    "calls": calls[:trained], "sharded_calls": calls[trained:], "sharded": sharded,
    "forwards": trainer.model_wrapped.calls,
    "world_process_zero": trainer.is_world_process_zero(),
}))
"""


def _close(a: dict, b: dict, tol: float = 1e-5) -> bool:
    """Every metric and every per-prompt distribution of two evaluations within ``tol``."""
    same = all(abs(a[key] - b[key]) <= tol for key in METRICS)
    for x, y in zip(a["prompts"], b["prompts"], strict=True):
        same &= np.allclose(x["distribution"], y["distribution"], rtol=0, atol=tol)
        same &= np.allclose(x["mass"], y["mass"], rtol=0, atol=tol)
    return bool(same)


def test_two_processes_evaluate_shares_and_log_the_whole_task(tmp_path):
    from transformers import AutoModelForCausalLM

    from pmrlhf.trl.callback import LOGGED, evaluate_policy

    model, tok = load_model("tiny-llama", seed=0)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         str(script), str(folder), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    main, other = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert (main["world_process_zero"], other["world_process_zero"]) == (True, False)
    # Each process ran its share once per evaluation: prompts 0 and 2, prompt 1.
    assert (main["calls"], other["calls"]) == ([2, 2], [1, 1])
    # Both hold the whole task's evaluations, the same ones, step by step.
    assert [h["step"] for h in main["history"]] == [1, 2]
    assert other["history"] == main["history"]
    final = AutoModelForCausalLM.from_pretrained(tmp_path / "final")
    single = evaluate_policy(final, tok, _three_prompts())
    assert _close(main["history"][-1], single)
    # The main process logged the whole task's values (reported from it alone).
    logs = [r for r in main["log_history"] if "loss" in r]
    assert len(logs) == 2
    for record, evaluation in zip(logs, main["history"], strict=True):
        assert all(record[key] == evaluation[key] for key in LOGGED)
    # The sharded path: shares padded to one size, through the wrapper whose every forward
    # is a collective (the same two on both processes), one result.
    assert (main["sharded_calls"], other["sharded_calls"]) == ([2], [2])
    assert main["forwards"] == other["forwards"] == 2
    assert other["sharded"] == main["sharded"] and _close(main["sharded"], single)


def test_prompt_shares_cover_every_prompt_once_or_pad_to_one_size():
    from pmrlhf.trl._evaluation import prompt_shares

    assert prompt_shares(3, 1) == [[0, 1, 2]]
    assert prompt_shares(3, 2) == [[0, 2], [1]]
    assert prompt_shares(3, 2, equal=True) == [[0, 2], [1, 1]]
    assert prompt_shares(2, 3) == [[0], [1], []]
    assert prompt_shares(2, 3, equal=True) == [[0], [1], [0]]
    with pytest.raises(ValueError, match="world"):
        prompt_shares(3, 0)
    for n in range(7):
        for world in range(1, 5):
            shares = prompt_shares(n, world)
            assert sorted(i for s in shares for i in s) == list(range(n))
            padded = prompt_shares(n, world, equal=True)
            assert len({len(s) for s in padded}) == 1
            assert [sorted(set(p) | set(s)) for p, s in zip(padded, shares, strict=True)] == [
                sorted(set(p)) for p in padded
            ]


def test_parameters_sharded_reads_fsdp_and_zero3(monkeypatch):
    import transformers.integrations as integrations

    from pmrlhf.trl._evaluation import parameters_sharded

    assert not parameters_sharded(None)
    assert not parameters_sharded(SimpleNamespace(is_fsdp_enabled=False))
    assert parameters_sharded(SimpleNamespace(is_fsdp_enabled=True))
    deepspeed = SimpleNamespace(is_fsdp_enabled=False, is_deepspeed_enabled=True)
    for stage3 in (False, True):
        monkeypatch.setattr(integrations, "is_deepspeed_zero3_enabled", lambda s=stage3: s)
        assert parameters_sharded(deepspeed) is stage3


class _Counting(torch.nn.Module):
    """A stand-in for a sharded wrapper (FSDP module, DeepSpeed engine): counts its calls."""

    def __init__(self, module):
        super().__init__()
        self.module, self.calls = module, 0

    def forward(self, **kwargs):
        self.calls += 1
        return self.module(**kwargs)


def test_sharded_callback_runs_the_wrapped_model_on_a_padded_share(monkeypatch):
    # Process 1 of 2 simulated: its gather answered with process 0's share (prompts 0, 2).
    import pmrlhf.trl._evaluation as evaluation
    from pmrlhf.trl import PreferenceMatchingCallback
    from pmrlhf.trl.callback import evaluate_policy

    task = _three_prompts()
    model, tok = load_model("tiny-llama", seed=3)
    others = evaluation.share_logprobs(model, tok, task, [0, 2])
    model.train()
    wrapped = _Counting(model)
    trainer = SimpleNamespace(log=print, is_fsdp_enabled=True, model_wrapped=wrapped)
    local = []

    def gather(share):
        local.append(dict(share))
        return {**others, **share}

    monkeypatch.setattr(evaluation, "gather_shares", gather)
    monkeypatch.setattr("pmrlhf.trl.callback.process_layout", lambda: (1, 2))
    result = PreferenceMatchingCallback(task, trainer=trainer).evaluate(model, tok)
    # The wrapper ran twice (the prompts, then the candidates), on prompt 1 and its repeat
    # (process 0 runs two prompts too); the repeat's result was dropped.
    assert wrapped.calls == 2 and [list(share) for share in local] == [[1]]
    assert model.training  # the mode as it was
    single = evaluate_policy(model, tok, task)
    assert all(abs(result[key] - single[key]) <= 1e-6 for key in METRICS)
