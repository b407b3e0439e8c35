"""``pmrlhf.trl``: PM and conditional PM inside TRL's RLOO and GRPO trainers (tiny models).

The reference model is a tiny random Llama whose embeddings are scaled up so that its
next-token distributions are peaked: some sampled tokens have ``pi_ref`` near 1, others
near 0, and a threshold ``alpha = 0.1`` splits them (conditional PM is then neither PM nor
KL on them).
"""

import contextlib
import functools
import importlib
import json
import math
import re
import runpy
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("datasets")

import torch  # noqa: E402

from pmrlhf.lm_experiments import evaluate_candidates, load_model, load_task  # noqa: E402
from pmrlhf.lm_experiments.evaluate.exact import METRICS
from pmrlhf.lm_experiments.models.sequences import (
    completion_mask,
    encode_prompt,
    encode_response,
    left_pad,
    right_pad,
    sample_shared,
    token_logprobs,
)
from pmrlhf.lm_experiments.train.rloo_estimators import leave_one_out
from pmrlhf.theory import penalty  # noqa: E402

K = 4  # completions per prompt
BETA = 0.5
TIMING = ("step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second")


@pytest.fixture(scope="module")
def peaked(tmp_path_factory):
    """(folder, tokenizer, task): a saved tiny Llama with peaked next-token distributions."""
    model, tok = load_model("tiny-llama", seed=0)
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(20)  # tied: sharper logits too
    folder = tmp_path_factory.mktemp("peaked")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder), tok, load_task("three_answers")


@pytest.fixture(scope="module")
def fixed(peaked):
    """K completions of each of two prompts, sampled from the reference and cut after the
    first end token as TRL cuts them; the first is candidate 0 exactly (the reward varies)."""
    folder, tok, task = peaked
    model, _ = load_model("tiny-llama", seed=0)
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(20)
    prompts = [encode_prompt(tok, p.messages) for p in task.prompts[:2]]
    p_ids, p_mask = left_pad(prompts, tok.pad_token_id)
    sampled = sample_shared(
        model,
        p_ids,
        p_mask,
        samples=K,
        max_new_tokens=4,
        eos_id=tok.eos_token_id,
        pad_id=tok.pad_token_id,
        generator=torch.Generator().manual_seed(0),
    )
    mask, _ = completion_mask(sampled, tok.eos_token_id)
    completions = [row[m.bool()].tolist() for row, m in zip(sampled, mask, strict=True)]
    completions[0] = encode_response(tok, task.prompts[0].candidates[0])
    rows = [row for i, row in enumerate(task.to_dataset()) if i < 2 for _ in range(K)]
    return [prompts[i // K] for i in range(2 * K)], completions, rows


def _args(kind, tmp_path, **extra):
    from pmrlhf.trl import PMGRPOConfig, PMRLOOConfig

    cls = {"rloo": PMRLOOConfig, "grpo": PMGRPOConfig}.get(kind, kind)
    return cls(
        output_dir=str(tmp_path / "trainer"),
        per_device_train_batch_size=2 * K,
        num_generations=K,
        max_completion_length=3,
        max_steps=2,
        learning_rate=1e-2,
        beta=BETA,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
        **extra,
    )


def first_token(completion_ids, **kwargs):
    """A reward that varies between random completions."""
    return [(ids[0] % 13) / 13 for ids in completion_ids]


def _settings(regularizer):
    return {"regularizer": regularizer, **({"cpm_alpha": 0.1} if regularizer == "cpm" else {})}


def _perturb(model, peft: bool):
    """Move the policy away from the reference (LoRA's B matrices start at zero)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not peft or "lora_B" in name:
                param.add_(0.05 * torch.randn(param.shape, generator=generator))


def _score(trainer, fixed):
    """TRL's scoring of the fixed completions: (its output, the metrics it appended)."""
    prompt_ids, completions, rows = fixed

    def generate(prompts):  # what TRL's _generate returns, with the fixed completions
        return prompt_ids, completions, [[{"role": "assistant", "content": ""}]] * len(rows)

    trainer._generate = generate
    trainer.model.train()
    output = trainer._generate_and_score_completions(rows)
    return output, {k: v[-1] for k, v in trainer._metrics["train"].items() if v}


def _theory(trainer, fixed, regularizer, alpha, peft):
    """``train_rl``'s score and advantage (``penalty_gradient="sampled"``) of the fixed
    completions: per-token penalty, ``R = r - beta sum_t c_t``, leave-one-out."""
    prompt_ids, completions, rows = fixed
    tok = trainer.processing_class
    p_ids, p_mask = left_pad(prompt_ids, tok.pad_token_id)
    c_ids, c_mask = right_pad(completions, tok.pad_token_id)
    policy = trainer.model
    with torch.no_grad():
        logp = token_logprobs(policy, p_ids, p_mask, c_ids, c_mask)
        ref = None
        if regularizer != "pm" and peft:
            with policy.disable_adapter():
                ref = token_logprobs(policy, p_ids, p_mask, c_ids, c_mask)
        elif regularizer != "pm":
            ref = token_logprobs(trainer.ref_model, p_ids, p_mask, c_ids, c_mask)
    c = penalty(logp, ref, regularizer=regularizer, alpha=alpha) * c_mask
    reward = torch.tensor(
        trainer.reward_funcs[0](
            completion_ids=completions, prompt_index=[r["prompt_index"] for r in rows]
        )
    )
    returns = reward - BETA * c.sum(-1)
    return leave_one_out(returns, K), float(c.sum() / c_mask.sum())


def _trainer(peaked, tmp_path, regularizer, *, peft=False, kind="rloo", callbacks=None, **extra):
    from peft import LoraConfig

    from pmrlhf.trl import PMGRPOTrainer, PMRLOOTrainer

    folder, tok, task = peaked
    cls = {"rloo": PMRLOOTrainer, "grpo": PMGRPOTrainer}[kind]
    return cls(
        model=folder,
        reward_funcs=task.reward_function(tok),
        args=_args(kind, tmp_path, **{**_settings(regularizer), **extra}),
        train_dataset=task.to_dataset(),
        processing_class=tok,
        callbacks=callbacks,
        peft_config=LoraConfig(r=4, target_modules=["q_proj", "v_proj"]) if peft else None,
    )


def test_configs_reject_invalid_combinations_naming_the_field(tmp_path):
    from pmrlhf.trl import PMGRPOConfig, PMRLOOConfig

    cases = [
        ({"regularizer": "entropy"}, "regularizer"),
        ({"regularizer": "cpm"}, "cpm_alpha"),
        ({"regularizer": "cpm", "cpm_alpha": 1.5}, "cpm_alpha"),
        ({"regularizer": "pm", "cpm_alpha": 0.1}, "cpm_alpha"),
        ({"regularizer": "kl", "cpm_alpha": 0.1}, "cpm_alpha"),
        ({"regularizer": "pm", "beta": 0.0}, "beta"),
        ({"regularizer": "pm", "sync_ref_model": True}, "sync_ref_model"),
    ]
    for extra, field in cases:
        with pytest.raises(ValueError, match=f"^{field}"):
            PMRLOOConfig(output_dir=str(tmp_path), bf16=False, **extra)
    grpo = {"output_dir": str(tmp_path), "bf16": False, "regularizer": "cpm", "cpm_alpha": 0.1}
    with pytest.raises(ValueError, match="^beta"):  # beta = 0 would switch the penalty off
        PMGRPOConfig(**grpo, beta=0.0)
    with pytest.raises(ValueError, match="^multi_objective_aggregation"):
        PMGRPOConfig(**grpo, beta=1.0, multi_objective_aggregation="normalize_then_sum")
    ok = PMRLOOConfig(output_dir=str(tmp_path), bf16=False, regularizer="cpm", cpm_alpha=0.1)
    assert (ok.regularizer, ok.cpm_alpha, ok.beta) == ("cpm", 0.1, 1.0)


@contextlib.contextmanager
def no_user_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        yield


BETA_WARNING = "softmax(r / beta) = softmax(r / 0.05), not the preference distribution softmax(r)"


@pytest.mark.parametrize("kind", ["rloo", "grpo"])
def test_pm_and_cpm_beta_defaults_to_one_and_another_beta_warns(tmp_path, kind):
    from trl import GRPOConfig, RLOOConfig

    from pmrlhf.trl import PMGRPOConfig, PMRLOOConfig

    cls, trl_cls = {"rloo": (PMRLOOConfig, RLOOConfig), "grpo": (PMGRPOConfig, GRPOConfig)}[kind]
    base = {"output_dir": str(tmp_path), "bf16": False}
    base |= {"scale_rewards": "none"} if kind == "grpo" else {}  # GRPO's scaling warns apart
    with no_user_warning():  # the optimum is softmax(r): nothing to say
        for regularizer in ("pm", "cpm"):
            config = cls(**base, **_settings(regularizer))
            assert config.beta == 1.0, regularizer
            assert cls(**base, **_settings(regularizer), beta=1.0).beta == 1.0
        # TRL's own KL keeps TRL's default beta (0.05 for RLOO, 0 for GRPO), silently.
        assert cls(**base).beta == trl_cls(output_dir=str(tmp_path), bf16=False).beta
        assert cls(**base, beta=0.05).beta == 0.05
    for regularizer in ("pm", "cpm"):
        with pytest.warns(UserWarning, match=re.escape(BETA_WARNING)):
            config = cls(**base, **_settings(regularizer), beta=0.05)
        assert config.beta == 0.05  # honoured, only named


def test_trl_parser_tells_a_given_beta_from_none_on_the_command_line_and_in_yaml(tmp_path):
    from trl import TrlParser

    from pmrlhf.trl import PMGRPOConfig, PMRLOOConfig

    def parse(argv, cls=PMRLOOConfig):
        (config,) = TrlParser((cls,)).parse_args_and_config(
            ["--output_dir", str(tmp_path), "--bf16", "False", *argv]
        )
        return config

    with no_user_warning():
        assert parse(["--regularizer", "pm"]).beta == 1.0
        assert parse([]).beta == 0.05  # kl: TRL's
        assert parse(["--regularizer", "pm", "--scale_rewards", "none"], PMGRPOConfig).beta == 1.0
    with pytest.warns(UserWarning, match=re.escape(BETA_WARNING)):
        assert parse(["--regularizer", "pm", "--beta", "0.05"]).beta == 0.05
    yaml_file = tmp_path / "pm.yaml"
    yaml_file.write_text("regularizer: cpm\ncpm_alpha: 0.1\n")
    with no_user_warning():
        assert parse(["--config", str(yaml_file)]).beta == 1.0
    yaml_file.write_text("regularizer: cpm\ncpm_alpha: 0.1\nbeta: 0.05\n")
    with pytest.warns(UserWarning, match=re.escape(BETA_WARNING)):
        assert parse(["--config", str(yaml_file)]).beta == 0.05
    for cls in (PMRLOOConfig, PMGRPOConfig):  # --beta's help says what beta does now
        text = " ".join(TrlParser((cls,)).format_help().split())
        assert "softmax(r / beta)" in text and "KL coefficient" not in text


def test_grpo_reward_scaling_with_pm_or_cpm_warns_and_names_the_way_out(tmp_path):
    from pmrlhf.trl import PMGRPOConfig

    base = {"output_dir": str(tmp_path), "bf16": False}
    for regularizer in ("pm", "cpm"):
        for scale, spread in (
            (None, "group"),
            ("group", "group"),
            ("batch", "batch"),
            (True, "group"),
        ):
            given = {} if scale is None else {"scale_rewards": scale}
            with pytest.warns(UserWarning, match=r"scale_rewards='none'") as record:
                PMGRPOConfig(**base, **_settings(regularizer), **given)
            (message,) = [str(w.message) for w in record if "scale_rewards" in str(w.message)]
            assert f"the penalty's weight becomes beta / std({spread} rewards)" in message
            assert "softmax(r / beta)" in message
        with no_user_warning():
            for off in ("none", False):
                PMGRPOConfig(**base, **_settings(regularizer), scale_rewards=off)
    with no_user_warning():  # GRPO's own KL: TRL's business
        PMGRPOConfig(**base, beta=0.1)


SAMPLING = [
    ("temperature", 0.7),
    ("top_p", 0.9),
    ("top_k", 50),
    ("min_p", 0.05),
    ("repetition_penalty", 1.1),
]


@pytest.mark.parametrize("kind", ["rloo", "grpo"])
def test_sampling_other_than_from_the_policy_warns_naming_the_field(tmp_path, kind):
    from pmrlhf.trl import PMGRPOConfig, PMRLOOConfig

    cls = {"rloo": PMRLOOConfig, "grpo": PMGRPOConfig}[kind]
    base = {"output_dir": str(tmp_path), "bf16": False}
    base |= {"scale_rewards": "none"} if kind == "grpo" else {}
    for name, value in SAMPLING:
        with pytest.warns(UserWarning, match=re.escape(f"{name}={value!r}")):
            cls(**base, regularizer="pm", **{name: value})
        with pytest.warns(UserWarning, match=re.escape(f"{name}={value!r}")):  # TRL: overrides
            cls(**base, regularizer="pm", generation_kwargs={name: value})
        with no_user_warning():  # TRL's own KL: TRL's business
            cls(**base, beta=0.1, **{name: value})
    with no_user_warning():  # the neutral values, vLLM's "no top-k" included
        for top_k in (0, -1):
            cls(**base, regularizer="pm", temperature=1.0, top_p=1.0, top_k=top_k, min_p=0.0)
    with pytest.warns(UserWarning, match=r"temperature=0\.7, top_p=0\.9, top_k=50"):
        cls(**base, regularizer="cpm", cpm_alpha=0.1, temperature=0.7, top_p=0.9, top_k=50)


def test_trl_parser_reads_the_new_fields_as_in_readme(tmp_path):
    from trl import TrlParser

    from pmrlhf.trl import PMRLOOConfig

    base = ["--output_dir", str(tmp_path), "--bf16", "False"]
    (config,) = TrlParser((PMRLOOConfig,)).parse_args_and_config(
        [*base, "--regularizer", "cpm", "--cpm_alpha", "0.1", "--beta", "1.0"]
    )
    assert (config.regularizer, config.cpm_alpha, config.beta) == ("cpm", 0.1, 1.0)
    with pytest.raises(SystemExit):  # argparse's choices
        TrlParser((PMRLOOConfig,)).parse_args_and_config([*base, "--regularizer", "nope"])


def test_kl_is_trl_bit_for_bit(peaked, tmp_path):
    from trl import RLOOConfig, RLOOTrainer

    from pmrlhf.trl import PMRLOOTrainer

    folder, tok, task = peaked
    runs = {}
    for name, trainer_cls, config_cls in (
        ("trl", RLOOTrainer, RLOOConfig),
        ("pmrlhf", PMRLOOTrainer, "rloo"),
    ):
        trainer = trainer_cls(
            model=folder,
            reward_funcs=first_token,  # varies: the oracle pays a random model a constant
            args=_args(config_cls, tmp_path / name),
            train_dataset=task.to_dataset(),
            processing_class=tok,
        )
        advantages, score = [], trainer._generate_and_score_completions

        def recording(inputs, score=score, advantages=advantages):
            output = score(inputs)
            advantages.append(output["advantages"].clone())
            return output

        trainer._generate_and_score_completions = recording
        trainer.train()
        logs = [{k: v for k, v in r.items() if k not in TIMING} for r in trainer.state.log_history]
        runs[name] = advantages, logs
    (ours, our_logs), (theirs, their_logs) = runs["pmrlhf"], runs["trl"]
    assert len(ours) == 2 and all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert our_logs == their_logs  # grad norms, KL, rewards, losses: identical
    assert their_logs[1]["kl"] != 0 and their_logs[0]["grad_norm"] > 0  # not a vacuous match


@pytest.mark.parametrize("peft", [False, True], ids=["ref-model", "peft-adapters-off"])
@pytest.mark.parametrize("regularizer", ["pm", "cpm", "kl"])
def test_logged_penalty_and_advantages_follow_train_rl(peaked, fixed, tmp_path, regularizer, peft):
    trainer = _trainer(peaked, tmp_path, regularizer, peft=peft)
    _perturb(trainer.model, peft)
    output, logged = _score(trainer, fixed)
    alpha = trainer.cpm_alpha
    advantages, token_mean = _theory(trainer, fixed, regularizer, alpha, peft)
    name = "kl" if regularizer == "kl" else "penalty"
    assert logged[name] == pytest.approx(token_mean, abs=1e-5)
    assert ("kl" in logged) == (regularizer == "kl")
    assert torch.allclose(output["advantages"], advantages, atol=1e-4)
    assert advantages.abs().max() > 0.1  # the check is not vacuous
    if regularizer == "cpm":  # alpha splits the sampled tokens: neither all PM nor all KL
        assert 0 < logged["penalty/implausible_fraction"] < 1


def test_plain_pm_runs_no_reference_pass(peaked, fixed, tmp_path):
    from pmrlhf.trl._shared import NoReference

    trainer = _trainer(peaked, tmp_path, "pm")
    assert isinstance(trainer.ref_model, NoReference) and trainer.beta == BETA
    calls = []
    forward = trainer._get_per_token_logps_and_entropies.__func__

    def counting(self, model, *args, **kwargs):
        calls.append(model)
        return forward(self, model, *args, **kwargs)

    trainer._get_per_token_logps_and_entropies = counting.__get__(trainer)
    _score(trainer, fixed)
    assert len(calls) == 2 and calls[1] is trainer.ref_model  # policy, then log w = 0
    with pytest.raises(RuntimeError, match="no reference model"):
        trainer.ref_model(torch.zeros(1))
    from pmrlhf.trl import PreferenceMatchingCallback

    callback = PreferenceMatchingCallback(peaked[2])
    trainer.add_callback(callback)  # added after construction: bound all the same
    assert callback.trainer is trainer


def test_cpm_tends_to_pm_and_to_kl_at_the_ends_of_alpha(peaked, fixed, tmp_path):
    def advantages(regularizer, **extra):
        trainer = _trainer(peaked, tmp_path / regularizer, regularizer, **extra)
        _perturb(trainer.model, False)
        return _score(trainer, fixed)[0]["advantages"]

    assert torch.equal(advantages("cpm", cpm_alpha=1e-30), advantages("pm"))
    assert torch.equal(advantages("cpm", cpm_alpha=1 - 1e-6), advantages("kl"))


@pytest.mark.parametrize(
    ("regularizer", "peft"), [("pm", False), ("cpm", True)], ids=["pm", "cpm-peft"]
)
def test_two_step_train_logs_penalty_and_exact_evaluation(peaked, tmp_path, regularizer, peft):
    from pmrlhf.trl import PreferenceMatchingCallback
    from pmrlhf.trl.callback import LOGGED

    task = peaked[2]
    callback = PreferenceMatchingCallback(task, every=1)
    trainer = _trainer(peaked, tmp_path, regularizer, peft=peft, callbacks=[callback])
    trainer.train()
    logs = [r for r in trainer.state.log_history if "loss" in r]
    assert len(logs) == 2 and all("penalty" in r and "kl" not in r for r in logs)
    assert all(math.isfinite(r["penalty"]) and r["grad_norm"] > 0 for r in logs)
    # The callback's exact evaluation went through the trainer's own log, step by step.
    assert [h["step"] for h in callback.history] == [1, 2]
    for record, evaluation in zip(logs, callback.history, strict=True):
        assert all(record[key] == evaluation[key] for key in LOGGED)
    assert trainer.model.training  # evaluation left the mode as it was


def test_callback_numbers_equal_evaluate_candidates(peaked, tmp_path):
    from pmrlhf.trl import PreferenceMatchingCallback
    from pmrlhf.trl.callback import LOGGED

    folder, tok, task = peaked
    model, _ = load_model("tiny-llama", seed=2)
    model.train()
    result = PreferenceMatchingCallback(task, every=3).evaluate(model, tok)
    assert model.training
    assert result == evaluate_candidates(model, tok, task)
    with pytest.raises(TypeError, match="task"):
        PreferenceMatchingCallback("three_answers")
    with pytest.raises(ValueError, match="every"):
        PreferenceMatchingCallback(task, every=0)
    callback = PreferenceMatchingCallback(task)
    with pytest.raises(RuntimeError, match="no trainer"):
        callback.on_train_begin(None, None, None)
    # A trainer without TRL's metric pool: the metrics go through its log() at once.
    from transformers import TrainerControl, TrainerState

    logged = []

    class Plain:
        def log(self, logs):
            logged.append(logs)

    callback = PreferenceMatchingCallback(task, every=3, trainer=Plain())
    for step in (2, 3):
        state = TrainerState(global_step=step)
        callback.on_step_end(None, state, TrainerControl(), model=model, processing_class=tok)
    assert logged == [{key: result[key] for key in LOGGED}]
    assert [h["step"] for h in callback.history] == [3]


def test_grpo_penalty_enters_the_reward_before_group_normalisation(peaked, fixed, tmp_path):
    trainer = _trainer(peaked, tmp_path, "cpm", kind="grpo")
    assert trainer.beta == 0.0 and trainer.penalty_beta == BETA  # no k3 term in the loss
    assert trainer.reward_func_names == ["oracle", "penalty"]
    _perturb(trainer.model, False)
    trainer.model.train()
    _, _, rows = fixed
    output = trainer._generate_and_score_completions(rows)
    assert "ref_per_token_logps" not in output
    p_ids, p_mask = output["prompt_ids"], output["prompt_mask"]
    c_ids, c_mask = output["completion_ids"], output["completion_mask"]
    with torch.no_grad():
        logp = token_logprobs(trainer.model, p_ids, p_mask, c_ids, c_mask)
        ref = token_logprobs(trainer.ref_model, p_ids, p_mask, c_ids, c_mask)
    c = penalty(logp, ref, regularizer="cpm", alpha=0.1) * c_mask
    completions = [row[m.bool()].tolist() for row, m in zip(c_ids, c_mask, strict=True)]
    index = [r["prompt_index"] for r in rows]
    reward = torch.tensor(trainer.reward_funcs[0](completion_ids=completions, prompt_index=index))
    grouped = (reward - BETA * c.sum(-1)).view(-1, K)
    expected = (grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)
    assert torch.allclose(output["advantages"], expected.view(-1), atol=1e-4)
    assert trainer._metrics["train"]["penalty"][-1] == pytest.approx(
        float(c.sum() / c_mask.sum()), abs=1e-5
    )


def test_grpo_kl_is_trl_and_pm_trains(peaked, tmp_path):
    kl = _trainer(peaked, tmp_path / "kl", "kl", kind="grpo")
    assert kl.beta == BETA and kl.reward_func_names == ["oracle"]  # TRL's k3 term, as is
    pm = _trainer(peaked, tmp_path / "pm", "pm", kind="grpo", reward_weights=[2.0])
    assert pm.ref_model is None and pm.reward_weights.tolist() == [2.0, -BETA]
    pm.train()
    logs = [r for r in pm.state.log_history if "loss" in r]
    assert len(logs) == 2 and all("rewards/penalty/mean" in r and "penalty" in r for r in logs)
    with pytest.raises(ValueError, match="reward_weights"):
        _trainer(peaked, tmp_path / "w", "pm", kind="grpo", reward_weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="tools"):
        from pmrlhf.trl import PMGRPOTrainer

        folder, tok, task = peaked
        PMGRPOTrainer(
            model=folder,
            reward_funcs=task.reward_function(tok),
            args=_args("grpo", tmp_path / "t", regularizer="pm"),
            processing_class=tok,
            tools=[len],
        )


def test_task_dataset_and_token_id_reward(peaked, tmp_path):
    folder, tok, task = peaked
    data = task.to_dataset()
    assert data.column_names == ["prompt", "prompt_index"] and len(data) == len(task.prompts)
    trainer = _trainer(peaked, tmp_path, "pm")
    ids, _, _ = trainer._tokenize_prompts([row["prompt"] for row in data])
    assert [list(i) for i in ids] == [encode_prompt(tok, p.messages) for p in task.prompts]
    reward = task.reward_function(tok)
    rewards, off = task.oracle_rewards()[1], task.off_candidate_reward(1)
    candidates = [encode_response(tok, c) for c in task.prompts[1].candidates]
    got = reward(completion_ids=[*candidates, candidates[0][:-1]], prompt_index=[1] * 4)
    assert got == pytest.approx([*rewards, off])  # cut off before its end token: off
    with pytest.raises(ValueError, match="prompt_index"):
        reward(completion_ids=candidates)
    with pytest.raises(ValueError, match="prompt_index"):
        reward(completion_ids=candidates, prompt_index=[7, 0, 0])


def test_lm_trl_writes_lm_runs_eval_json_and_refuses_a_second_run(tmp_path, capsys):
    from pmrlhf.cli import main

    out = tmp_path / "run"
    argv = ["lm", "trl", "--model", "tiny-llama", "--task", "two_answers", "--sft-steps", "1"]
    argv += ["--steps", "2", "--regularizer", "cpm", "--alpha", "0.1", "--eval-every", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    result = json.loads((out / "eval.json").read_text())
    assert set(result) == {*METRICS, "prompts", "reference"}
    assert set(result["reference"]) == {*METRICS, "prompts"}
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sum("pairwise_pmd" in r and "penalty" in r for r in records) == 2
    assert not list(out.glob(".trl-*"))  # the scratch folder (SFT reference) is gone
    capsys.readouterr()
    assert main([*argv, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "already holds a run" in error and len(error.strip().splitlines()) == 1
    bad = ["lm", "trl", "--regularizer", "pm", "--alpha", "0.1", "--out", str(tmp_path / "b")]
    assert main(bad) == 2 and "alpha" in capsys.readouterr().err


def test_lm_trl_grpo_switches_reward_scaling_off_for_pm_unless_asked(tmp_path):
    from pmrlhf.lm_experiments.commands.run_config import RunConfig
    from pmrlhf.trl.arguments import trl_config
    from pmrlhf.trl.command import run_trl

    def config(regularizer, trainer="grpo", scale_rewards=None):
        rl = {"regularizer": regularizer, "alpha": 0.1 if regularizer == "cpm" else None}
        run = RunConfig(model="tiny-llama", task="two_answers").with_overrides({}, rl)
        return trl_config(run, trainer, tmp_path / "t", 3, 2, scale_rewards)

    with no_user_warning():  # beta 1, sampling at temperature 1, no scaling: as the theory
        assert config("pm").scale_rewards == config("cpm").scale_rewards == "none"
    assert config("kl").scale_rewards == "group"  # TRL's default with TRL's own KL
    with pytest.warns(UserWarning, match=re.escape("beta / std(batch rewards)")):
        assert config("pm", scale_rewards="batch").scale_rewards == "batch"
    assert not hasattr(config("pm", "rloo"), "scale_rewards")
    run = RunConfig(model="tiny-llama", task="two_answers")
    with pytest.raises(ValueError, match="^scale_rewards only applies to trainer='grpo'"):
        run_trl(run, tmp_path / "r", trainer="rloo", scale_rewards="none")
    assert not (tmp_path / "r").exists()


def test_lm_trl_options_reach_run_trl(tmp_path, monkeypatch, pmrlhf_here):
    import pmrlhf.trl.command

    class Stop(Exception):
        pass

    seen = []

    def capture(config, out, **kwargs):
        seen.append((config, kwargs))
        raise Stop  # only the settings are checked; the CLI lets other errors propagate

    monkeypatch.setattr(pmrlhf.trl.command, "run_trl", capture)
    args = ["lm", "trl", "--model", "tiny-llama", "--task", "two_answers", "--trainer", "grpo"]
    with pytest.raises(Stop):
        pmrlhf_here(*args, "--samples-per-prompt", "6", "--out", tmp_path / "a")
    with pytest.raises(Stop):
        pmrlhf_here(*args, "--scale-rewards", "group", "--out", tmp_path / "b")
    with pytest.raises(Stop):
        pmrlhf_here(*args, "--report-to", "tensorboard,wandb", "--resume", "--out", tmp_path / "d")
    (first, default), (_, given), (_, reporting) = seen
    assert first.rl.samples_per_prompt == 6
    assert (default["scale_rewards"], given["scale_rewards"]) == (None, "group")
    assert (default["report_to"], default["resume"], default["save_every"]) == ("none", False, 10)
    assert (reporting["report_to"], reporting["resume"]) == (["tensorboard", "wandb"], True)
    status, stderr = pmrlhf_here(*args, "--samples-per-prompt", "1", "--out", tmp_path / "c")
    assert status == 2 and "samples_per_prompt" in stderr.strip().splitlines()[-1], stderr
    assert len(seen) == 3 and not (tmp_path / "c").exists()
    status, stderr = pmrlhf_here(*args, "--resume", "--restart", "--out", tmp_path / "e")
    assert status == 2 and "not allowed with argument" in stderr, stderr


def test_lm_trl_report_to_reaches_trl_and_is_checked(tmp_path):
    from pmrlhf.lm_experiments.commands.run_config import RunConfig
    from pmrlhf.trl.arguments import check_report_to, trl_config
    from pmrlhf.trl.command import run_trl

    run = RunConfig(model="tiny-llama", task="two_answers")
    args = trl_config(run, "rloo", tmp_path / "t", 3, 2, report_to="tensorboard", save_every=5)
    assert (args.report_to, args.save_strategy, args.save_steps) == (["tensorboard"], "steps", 5)
    assert trl_config(run, "rloo", tmp_path / "t", 3, 2).report_to == []  # "none"
    assert check_report_to(("wandb", "tensorboard")) == ["wandb", "tensorboard"]
    with pytest.raises(TypeError, match="^report_to must be a string or a list of strings"):
        check_report_to(3)
    with pytest.raises(ValueError, match="^report_to must name an integration"):
        check_report_to([])
    for bad in ({"report_to": ""}, {"save_every": -1}, {"resume": True, "restart": True}):
        with pytest.raises(ValueError, match="report_to|save_every|exclude each other"):
            run_trl(run, tmp_path / "r", **bad)
    assert not (tmp_path / "r").exists()


def test_lm_trl_resumes_an_interrupted_run_from_its_latest_checkpoint(tmp_path, monkeypatch):
    from pmrlhf.lm_experiments.commands.run_config import RunConfig
    from pmrlhf.trl.callback import PreferenceMatchingCallback
    from pmrlhf.trl.command import run_trl

    class Interrupted(Exception):
        pass

    on_step_end = PreferenceMatchingCallback.on_step_end

    def stop_at_step_two(self, args, state, control, **kwargs):
        if state.global_step == 2:  # before TRL saves checkpoint-2: checkpoint-1 is the latest
            raise Interrupted
        return on_step_end(self, args, state, control, **kwargs)

    # A learning rate at which the policy moves, and no SFT (it would not change the resume).
    rl = {"regularizer": "pm", "steps": 2, "lr": 0.05, "warmup_steps": 0}
    run = RunConfig(model="tiny-llama", task="two_answers").with_overrides({}, rl, {"steps": 0})
    out = tmp_path / "run"
    settings = {"eval_every": 1, "save_every": 1, "progress": False}
    uninterrupted = run_trl(run, tmp_path / "uninterrupted", **settings)
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint"):
        run_trl(run, out, resume=True, **settings)
    monkeypatch.setattr(PreferenceMatchingCallback, "on_step_end", stop_at_step_two)
    with pytest.raises(Interrupted):
        run_trl(run, out, **settings)
    monkeypatch.setattr(PreferenceMatchingCallback, "on_step_end", on_step_end)
    assert [p.name for p in (out / "trainer").glob("checkpoint-*")] == ["checkpoint-1"]
    assert not (out / "eval.json").exists()
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        run_trl(run, out, **settings)
    other = run.with_overrides({"seed": run.seed + 1}, {})
    with pytest.raises(ValueError, match=r"--resume: .* other settings \(seed\)"):
        run_trl(other, out, resume=True, **settings)
    result = run_trl(run, out, resume=True, **settings)
    # Bit for bit the uninterrupted run: weights, optimizer, schedule, RNG and prompt order.
    assert result == uninterrupted

    def logged(folder):
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        return [(r["step"], r["penalty"], r["loss"]) for r in map(json.loads, lines) if "loss" in r]

    # step 1 from the checkpoint's log history, step 2 resumed
    assert logged(out) == logged(tmp_path / "uninterrupted") and len(logged(out)) == 2
    assert [p.name for p in (out / "trainer").glob("checkpoint-*")] == ["checkpoint-2"]
    with pytest.raises(ValueError, match="--resume: the run in .* is finished"):
        run_trl(run, out, resume=True, **settings)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.16.0", "supported"),
        ("1.16.3", "supported"),
        ("1.16.0.dev0", "supported"),
        ("1.17.0", "untested"),
        ("1.40.2", "untested"),
        ("1.15.9", r"found TRL 1\.15\.9"),
        ("0.29.1", r"found TRL 0\.29\.1"),
        ("2.0.0", r"found TRL 2\.0\.0"),
        ("not-a-version", r"cannot read the TRL version 'not-a-version'"),
    ],
)
def test_trl_support_range(version, expected):
    from pmrlhf.trl import trl_support

    if expected in ("supported", "untested"):
        assert trl_support(version) == expected
    else:
        with pytest.raises(ImportError, match=f"{expected}.*pip install 'pmrlhf\\[trl\\]'"):
            trl_support(version)


def test_trl_support_rejects_a_non_string_and_misses_no_internal():
    from pmrlhf.trl import _compat

    with pytest.raises(TypeError, match="version must be a string"):
        _compat.trl_support(1.16)

    class Bare:
        _generate = staticmethod(lambda: None)

    with pytest.raises(ImportError, match=r"RLOOTrainer\._get_per_token_logps_and_entropies"):
        _compat.check_trainer_internals({"RLOOTrainer": Bare, "GRPOTrainer": Bare})


def test_trl_version_guard_and_missing_trl(monkeypatch):
    from pmrlhf.trl import check_trl_version

    assert check_trl_version("1.16.3") == "1.16.3"
    with pytest.warns(UserWarning, match=r"TRL 1\.17\.0 is newer and untested"):
        assert check_trl_version("1.17.0") == "1.17.0"
    with pytest.raises(ImportError, match=r"found TRL 1\.15\.0.*pip install 'pmrlhf\[trl\]'"):
        check_trl_version("1.15.0")
    for name in [m for m in sys.modules if m == "pmrlhf.trl" or m.startswith("pmrlhf.trl.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "trl", None)  # as if TRL were not installed
    with pytest.raises(ImportError, match=r"pip install 'pmrlhf\[trl\]'"):
        importlib.import_module("pmrlhf.trl")


def test_a_newer_untested_trl_is_imported_with_a_warning(monkeypatch):
    import trl

    import pmrlhf
    import pmrlhf.trl

    monkeypatch.setattr(pmrlhf, "trl", pmrlhf.trl)  # the package attribute, restored after
    for name in [m for m in sys.modules if m == "pmrlhf.trl" or m.startswith("pmrlhf.trl.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(trl, "__version__", "1.17.0")
    with pytest.warns(UserWarning, match=r"TRL 1\.17\.0 is newer and untested"):
        module = importlib.import_module("pmrlhf.trl")
    assert module.PMRLOOTrainer.__mro__[1] is trl.RLOOTrainer


def test_pmrlhf_imports_without_trl():
    code = (
        "import sys, pmrlhf, pmrlhf.lm_experiments, pmrlhf.cli; pmrlhf.cli.build_parser(); "
        "print('trl' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


def _readme_section() -> str:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    return text.split("## PM inside TRL", 1)[1].split("\n## ", 1)[0]


def test_readme_two_line_switch(tmp_path, monkeypatch):
    from trl import RLOOConfig, RLOOTrainer

    from pmrlhf.trl import PMRLOOConfig, PMRLOOTrainer

    (diff,) = re.findall(r"```diff\n(.*?)```", _readme_section(), flags=re.S)
    lines = diff.strip().splitlines()
    removed = [line[1:] for line in lines if line.startswith("-")]
    added = [line[1:] for line in lines if line.startswith("+")]
    assert len(removed) == len(added) == 2 == len(lines) / 2  # two lines change, nothing else
    monkeypatch.chdir(tmp_path)
    configs = []
    for script, config_cls, trainer_cls in (
        (removed, RLOOConfig, RLOOTrainer),
        (added, PMRLOOConfig, PMRLOOTrainer),
    ):
        namespace = {}
        exec(script[0], namespace)  # the import line
        assert namespace["RLOOConfig"] is config_cls and namespace["RLOOTrainer"] is trainer_cls
        cpu = {"bf16": False, "use_cpu": True}  # this machine has no GPU
        namespace["RLOOConfig"] = functools.partial(namespace["RLOOConfig"], **cpu)
        exec(script[1], namespace)  # the config line
        configs.append(namespace["config"])
    assert getattr(configs[0], "regularizer", "kl") == "kl"
    assert (configs[1].regularizer, configs[1].cpm_alpha, configs[1].beta) == ("cpm", 0.1, 1.0)


def test_readme_trl_parser_script_runs(peaked, tmp_path, monkeypatch):
    from trl import ModelConfig, TrlParser

    from pmrlhf.trl import PMRLOOConfig

    section = _readme_section()
    (script,) = [b for b in re.findall(r"```python\n(.*?)```", section, re.S) if "TrlParser" in b]
    (command,) = re.findall(r"```bash\n#[^\n]*\n(python train_pm.py .*?)```", section, re.S)
    cpu = ["--use_cpu", "True", "--bf16", "False", "--gradient_checkpointing", "False"]
    argv = shlex.split(command.replace("\\\n", " "))[2:] + cpu
    config, model_args = TrlParser((PMRLOOConfig, ModelConfig)).parse_args_and_config(argv)
    assert (config.regularizer, config.cpm_alpha, config.num_generations) == ("cpm", 0.1, 12)
    path = tmp_path / "train_pm.py"
    path.write_text(script)
    small = ["--per_device_train_batch_size", "8", "--num_generations", "4"]
    small += ["--max_completion_length", "3", "--max_steps", "1", "--report_to", "none"]
    argv = [str(path), "--model_name_or_path", peaked[0], "--output_dir", str(tmp_path / "o")]
    argv += ["--regularizer", "cpm", "--cpm_alpha", "0.1", "--beta", "1.0", *small, *cpu]
    monkeypatch.setattr(sys, "argv", argv)
    trainer = runpy.run_path(str(path))["trainer"]
    assert trainer.state.global_step == 1 and "penalty" in trainer.state.log_history[0]
