"""bf16 autocast in the RL and SFT steps: chosen, detected, and confined to the training
passes (weights, loss and evaluation stay float32)."""

import copy

import pytest
import torch

from pmrlhf.errors import PmrlhfUserError
from pmrlhf.lm_experiments import OracleReward, RLConfig, load_model, load_task, train_rl
from pmrlhf.lm_experiments.models import precision as prec
from pmrlhf.lm_experiments.train.sft import candidate_pairs, sft_on_pairs
from pmrlhf.lm_experiments.train.sft_config import SFTConfig

FAST = {"steps": 2, "lr": 1e-3, "samples_per_prompt": 2, "regularizer": "kl"}


def test_unknown_precision_is_refused_naming_the_setting():
    with pytest.raises(PmrlhfUserError, match="rl.precision"):
        RLConfig(precision="fp16").validate()
    with pytest.raises(PmrlhfUserError, match="sft.precision"):
        SFTConfig(precision=None).validate()


@pytest.mark.parametrize(
    ("flags", "native"),
    [("fpu avx2 avx512f", False), ("fpu avx512f avx512_bf16", True), ("amx_bf16 amx_tile", True)],
)
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, monkeypatch, flags, native):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert prec.cpu_flags(str(info)) == frozenset(flags.split())
    monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset(flags.split()))
    assert prec.native_bf16("cpu") is native
    assert prec.resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert prec.resolve_precision("fp32", "cpu") == "fp32"  # an explicit choice wins


def test_cpu_flags_of_a_missing_file_are_empty(tmp_path):
    assert prec.cpu_flags(str(tmp_path / "absent")) == frozenset()


def _run(precision, seed=0):
    model, tok = load_model("tiny-llama", seed=0)
    ref = copy.deepcopy(model).eval()
    task = load_task("three_answers")
    dtypes, autocast_in_eval = set(), []
    model.model.layers[0].mlp.down_proj.register_forward_hook(
        lambda _m, _i, out: dtypes.add(out.dtype)
    )

    def on_eval(step, policy):
        autocast_in_eval.append(torch.is_autocast_enabled("cpu"))
        return {}

    config = RLConfig(**FAST, precision=precision, eval_every=1)
    history = train_rl(
        model, ref, tok, task, OracleReward(task, tok), config, seed=seed, progress=False,
        on_eval=on_eval,
    )  # fmt: skip
    return history, model, dtypes, autocast_in_eval


def test_bf16_runs_the_matmuls_in_bf16_and_keeps_weights_loss_and_evaluation_in_fp32():
    history, model, dtypes, autocast_in_eval = _run("bf16")
    assert dtypes == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert autocast_in_eval == [False, False]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in history)
    _, _, fp32_dtypes, _ = _run("fp32")
    assert fp32_dtypes == {torch.float32}


def test_bf16_step_is_the_fp32_step_up_to_bf16_rounding():
    bf16, *_ = _run("bf16")
    fp32, *_ = _run("fp32")
    # The same seed draws the same first samples unless rounding flips a draw; the first
    # step's log-probabilities agree to bf16's precision (8 bits of mantissa).
    assert bf16[0]["entropy"] == pytest.approx(fp32[0]["entropy"], rel=0.05)


def test_sft_in_bf16_tracks_the_fp32_losses():
    task = load_task("three_answers")
    losses = {}
    for precision in ("fp32", "bf16"):
        model, tok = load_model("tiny-llama", seed=0)
        pairs, weights = candidate_pairs(task)
        losses[precision] = sft_on_pairs(
            model, tok, pairs, SFTConfig(steps=3, lr=1e-3, precision=precision), seed=0,
            weights=weights, progress=False,
        )  # fmt: skip
        assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)
