"""The shipped paper-scale configs (OPT-1.3B; Llama-2-7B with LoRA) on tiny base models.

The tiny models are saved to a folder as a hub model would be: without a chat template,
OPT with its dropout rates. Each config runs with the model swapped for the tiny one and
fewer steps; a run cut after its second RL step and resumed ends as the uninterrupted one.
"""

from dataclasses import replace
from importlib import resources

import pytest
import torch
from safetensors.torch import load_file

from pmrlhf.lm_experiments import load_model
from pmrlhf.lm_experiments.commands.run_config import RunConfig
from pmrlhf.lm_experiments.commands.single_run import run_one
from pmrlhf.lm_experiments.models.loading import PLAIN_TEMPLATE
from pmrlhf.lm_experiments.models.sequences import encode_prompt
from pmrlhf.lm_experiments.train import rl_plumbing
from pmrlhf.lm_experiments.train.checkpoint import _load_weights


@pytest.fixture(scope="module")
def base_models(tmp_path_factory):
    """``{"opt": folder, "llama": folder}``: tiny base models without a chat template."""
    folders = {}
    for short, name in (("opt", "tiny-opt"), ("llama", "tiny-llama")):
        model, tokenizer = load_model(name, seed=0)
        if short == "opt":  # as facebook/opt-1.3b's config.json
            for field in ("dropout", "attention_dropout", "activation_dropout", "layerdrop"):
                setattr(model.config, field, 0.1)
        tokenizer.chat_template = None
        folder = tmp_path_factory.mktemp(short)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[short] = folder
    return folders


def test_base_model_gets_the_plain_prompt_and_no_dropout(base_models):
    model, tokenizer = load_model(str(base_models["opt"]))
    assert tokenizer.chat_template == PLAIN_TEMPLATE
    text = tokenizer.decode(encode_prompt(tokenizer, [{"role": "user", "content": "Hi?"}]))
    assert text.endswith("\n\nHuman: Hi?\n\nAssistant:")
    for field in ("dropout", "attention_dropout", "activation_dropout", "layerdrop"):
        assert getattr(model.config, field) == 0.0, field
    assert all(
        getattr(module, name, 0.0) == 0.0
        for module in model.modules()
        for name in ("dropout", "layerdrop", "p")
        if isinstance(getattr(module, name, None), float)
    )
    model.train()  # dropout 0.1 would make two passes differ
    ids = torch.tensor([[1, 5, 9, 13, 17]])
    torch.testing.assert_close(model(input_ids=ids).logits, model(input_ids=ids).logits)
    with pytest.raises(ValueError, match="no chat template"):
        load_model(str(base_models["opt"]), prompt_format="chat")


@pytest.mark.parametrize("name,base", [("opt-1.3b", "opt"), ("llama-2-7b", "llama")])
def test_shipped_config_runs_and_resumes_exactly(name, base, base_models, tmp_path, monkeypatch):
    path = resources.files("pmrlhf.lm_experiments").joinpath("configs", f"{name}.yaml")
    config = RunConfig.from_file(path)
    assert config.prompt_format == "plain" and config.gradient_checkpointing
    assert bool(config.lora) == (base == "llama")
    config = replace(
        config,
        model=str(base_models[base]),
        sft=replace(config.sft, steps=3),
        # Fewer and shorter samples: the same code path (bf16, LoRA, gradient checkpointing,
        # inner epochs) at a sixteenth of the shipped step's work.
        rl=replace(
            config.rl,
            steps=3,
            checkpoint_every=1,
            prompts_per_step=2,
            samples_per_prompt=2,
            max_new_tokens=min(config.rl.max_new_tokens or 8, 8),
        ),
    )
    whole = run_one(config, tmp_path / "whole", progress=False)
    save = rl_plumbing.save_checkpoint

    def cut_after_step_2(folder, step, *args, **kwargs):
        save(folder, step, *args, **kwargs)
        if step == 2:
            raise KeyboardInterrupt  # as if killed right after the checkpoint

    monkeypatch.setattr(rl_plumbing, "save_checkpoint", cut_after_step_2)
    with pytest.raises(KeyboardInterrupt):
        run_one(config, tmp_path / "cut", progress=False)
    monkeypatch.setattr(rl_plumbing, "save_checkpoint", save)
    resumed = run_one(config, tmp_path / "cut", resume=True, progress=False)
    assert resumed == whole
    for log in ("metrics.jsonl",):
        assert (tmp_path / "cut" / log).read_text() == (tmp_path / "whole" / log).read_text()
    checkpoint = tmp_path / "cut" / "checkpoint"
    if config.lora:  # the adapters alone are saved, trained, and restored on resume
        assert not (checkpoint / "model.safetensors").exists()
        adapters = load_file(checkpoint / "adapter_model.safetensors")
        expected = load_file(tmp_path / "whole" / "checkpoint" / "adapter_model.safetensors")
        assert adapters.keys() == expected.keys()
        assert any(k.endswith("lora_B.weight") and v.abs().max() > 0 for k, v in adapters.items())
        for key, value in adapters.items():
            assert torch.equal(value, expected[key]), key
        # Adapter weights do not fit the bare model: an error, not a silent partial load.
        bare, _ = load_model(str(base_models[base]))
        with pytest.raises(ValueError, match="do not fit"):
            _load_weights(checkpoint, bare)


@pytest.mark.parametrize("kind,stage", [("FSDP", None), ("DEEPSPEED", 3)])
def test_sharded_parameters_are_refused_with_a_message(kind, stage):
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from pmrlhf.lm_experiments.commands.single_run import _check_backend

    plugin = None if stage is None else SimpleNamespace(zero_stage=stage)
    accelerator = SimpleNamespace(
        distributed_type=DistributedType[kind], state=SimpleNamespace(deepspeed_plugin=plugin)
    )
    with pytest.raises(ValueError, match="sharded parameters are not supported.*DDP"):
        _check_backend(accelerator)
    accelerator.distributed_type = DistributedType.MULTI_GPU  # DDP: fine
    _check_backend(accelerator)
