"""examples/trl_rloo_pm.py and examples/trl_grpo_pm.py: TRL's example-script shape with
pmrlhf's configs, run in-process on a tiny random policy and reward model and a local
prompt file, two steps each."""

import json
import runpy
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("datasets")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CPU = ["--use_cpu", "True", "--bf16", "False", "--gradient_checkpointing", "False"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(policy folder, reward model folder, prompt file): tiny random Llamas, SmolLM2's
    tokenizer, four plain-text prompts."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from pmrlhf.lm_experiments import load_model

    root = tmp_path_factory.mktemp("examples")
    policy, tok = load_model("tiny-llama", seed=0)
    policy.save_pretrained(root / "policy")
    tok.save_pretrained(root / "policy")
    torch.manual_seed(1)
    config = LlamaConfig(**{**policy.config.to_dict(), "num_labels": 1})
    LlamaForSequenceClassification(config).save_pretrained(root / "reward")
    tok.save_pretrained(root / "reward")
    prompts = root / "prompts.jsonl"
    lines = [json.dumps({"prompt": f"Name a colour, {i}:"}) for i in range(4)]
    prompts.write_text("\n".join(lines) + "\n")
    return root / "policy", root / "reward", prompts


@pytest.mark.parametrize(
    ("script", "extra"),
    [
        ("trl_rloo_pm.py", []),
        ("trl_grpo_pm.py", ["--scale_rewards", "none"]),
    ],
)
def test_example_script_trains_two_steps_with_cpm(tiny, tmp_path, monkeypatch, script, extra):
    policy, reward, prompts = tiny
    out = tmp_path / "out"
    argv = [str(EXAMPLES / script), "--model_name_or_path", str(policy)]
    argv += ["--reward_model_name_or_path", str(reward), "--dataset_name", str(prompts)]
    argv += ["--regularizer", "cpm", "--cpm_alpha", "0.1", "--output_dir", str(out)]
    argv += ["--num_generations", "2", "--per_device_train_batch_size", "4"]
    argv += ["--max_completion_length", "3", "--max_steps", "2", "--logging_steps", "1"]
    argv += ["--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "True"]
    monkeypatch.setattr(sys, "argv", [*argv, *CPU, *extra])
    trainer = runpy.run_path(argv[0], run_name="__main__")["trainer"]
    assert (trainer.regularizer, trainer.cpm_alpha, trainer.state.global_step) == ("cpm", 0.1, 2)
    logged = trainer.state.log_history[0]
    assert "penalty" in logged and "penalty/implausible_fraction" in logged, logged
    assert (out / "model.safetensors").exists()


def test_example_script_refuses_a_missing_reward_model_and_an_unknown_file(tiny, tmp_path):
    policy, _, prompts = tiny
    namespace = runpy.run_path(str(EXAMPLES / "trl_rloo_pm.py"))
    from trl import ModelConfig, TrlParser

    from pmrlhf.trl import PMRLOOConfig

    parser = TrlParser((namespace["PMScriptArguments"], PMRLOOConfig, ModelConfig))
    base = ["--model_name_or_path", str(policy), "--output_dir", str(tmp_path / "o"), *CPU]
    args = parser.parse_args_and_config([*base, "--dataset_name", str(prompts)])
    with pytest.raises(ValueError, match="--reward_model_name_or_path is required"):
        namespace["main"](*args)
    odd = tmp_path / "prompts.txt"
    odd.write_text("x\n")
    script_args, _, _ = parser.parse_args_and_config([*base, "--dataset_name", str(odd)])
    with pytest.raises(ValueError, match="--dataset_name: a local file must end in"):
        namespace["load_prompts"](script_args)
