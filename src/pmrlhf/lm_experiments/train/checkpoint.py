"""Checkpoints of an RL run: save, load, and clean up after a kill.

A checkpoint folder always holds ``trainer_state.pt`` (step, learning-rate schedule),
``history.json`` (the per-step records so far) and the model's ``save_pretrained`` files
(``adapter_model.safetensors`` for a PEFT model). The rest depends on the processes:

* one process: the optimizer and the random generators (Python's, the prompt choice's and
  the sampler's) in ``trainer_state.pt``;
* ``accelerate launch``: ``accelerate/`` from ``Accelerator.save_state`` (model, optimizer and
  random generators of every process, sharded where the backend shards them), each
  process's prompt and sample generators in ``sampling_rank<R>.pt``, and the tokenizer.

Every save is staged beside the folder and moved in with two renames, so that a kill leaves
the previous checkpoint or the new one, and what :func:`remove_checkpoint_staging` cleans up.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import tempfile
from pathlib import Path

import torch

from ...errors import PmrlhfUserError


def save_checkpoint(
    folder, step: int, history: list, *, model, optimizer, schedule, rng, sampler,
    accelerator=None, tokenizer=None,
) -> Path:  # fmt: skip
    """Save the state after ``step`` updates (``model``/``optimizer`` as prepared, if so).

    With ``accelerator`` every process must call it (saving is collective there).
    """
    folder = Path(folder)
    if accelerator is None:
        staging = Path(
            tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp")
        )
        model.save_pretrained(staging)
        state = {
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "step": step,
            "python_rng": random.getstate(),
            "numpy_rng": rng.bit_generator.state,
            "sampler": sampler.get_state(),
        }
        torch.save(state, staging / "trainer_state.pt")
        (staging / "history.json").write_text(json.dumps(history))
        return _swap(staging, folder)
    # Every process names the same staging folder without talking to the others.
    staging = folder.with_name(f".{folder.name}.step{step}.tmp")
    main = accelerator.is_main_process
    if main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    accelerator.wait_for_everyone()
    accelerator.save_state(staging / "accelerate")
    sampling = {"numpy_rng": rng.bit_generator.state, "sampler": sampler.get_state()}
    torch.save(sampling, staging / f"sampling_rank{accelerator.process_index}.pt")
    weights = accelerator.get_state_dict(model)  # gathered from every process where sharded
    if main:
        accelerator.unwrap_model(model).save_pretrained(staging, state_dict=weights)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        torch.save({"step": step, "schedule": schedule.state_dict()}, staging / "trainer_state.pt")
        (staging / "history.json").write_text(json.dumps(history))
    accelerator.wait_for_everyone()
    if main:
        _swap(staging, folder)
    accelerator.wait_for_everyone()
    return folder


def load_checkpoint(
    folder, *, model, optimizer, schedule, rng, sampler, accelerator=None
) -> tuple[int, list]:
    """Restore what :func:`save_checkpoint` saved, in place; return ``(step, history)``.

    Raises
    ------
    FileNotFoundError
        No complete checkpoint in ``folder``.
    PmrlhfUserError
        Weights that do not fit ``model``; a checkpoint of another number of processes.
    """
    folder = Path(folder)
    if not (folder / "trainer_state.pt").exists() or not list(folder.glob("*.safetensors")):
        raise FileNotFoundError(f"no complete checkpoint in {folder}")
    state = torch.load(folder / "trainer_state.pt", weights_only=False)
    history = json.loads((folder / "history.json").read_text())
    schedule.load_state_dict(state["schedule"])
    if accelerator is None:
        if "optimizer" not in state:
            raise PmrlhfUserError(f"{folder} was written by several processes: resume it with them")
        _load_weights(folder, model)
        optimizer.load_state_dict(state["optimizer"])
        random.setstate(state["python_rng"])
        rng.bit_generator.state = state["numpy_rng"]
        sampler.set_state(state["sampler"])
        return state["step"], history
    own = folder / f"sampling_rank{accelerator.process_index}.pt"
    if not (folder / "accelerate").is_dir() or not own.exists():
        raise PmrlhfUserError(
            f"{folder} was not written by {accelerator.num_processes} processes: resume it "
            "with as many as wrote it"
        )
    accelerator.load_state(folder / "accelerate")
    sampling = torch.load(own, weights_only=False)
    rng.bit_generator.state = sampling["numpy_rng"]
    sampler.set_state(sampling["sampler"])
    return state["step"], history


def _load_weights(folder: Path, model) -> None:
    """Load the ``*.safetensors`` of ``folder`` (shards too) into ``model``; a PEFT model
    takes its adapters (saved without the adapter's name in their keys)."""
    from safetensors.torch import load_file

    weights = {
        k: v for path in sorted(folder.glob("*.safetensors")) for k, v in load_file(path).items()
    }
    if hasattr(model, "peft_config"):
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, weights)
        missing = []  # the frozen base weights are not in an adapter checkpoint
    else:
        result = model.load_state_dict(weights, strict=False)
        # save_pretrained leaves out tied weights (lm_head = embeddings): those may be missing.
        current = model.state_dict()
        loaded = {current[k].data_ptr() for k in weights if k in current}
        missing = [k for k in result.missing_keys if current[k].data_ptr() not in loaded]
    if result.unexpected_keys or missing:
        raise PmrlhfUserError(
            f"the weights in {folder} do not fit the model: unexpected "
            f"{sorted(result.unexpected_keys)[:3]}, missing {sorted(missing)[:3]}"
        )


def _swap(staging: Path, folder: Path) -> Path:
    """Move ``staging`` to ``folder``; the previous checkpoint goes aside until then."""
    old = folder.with_name(f"{staging.name}.old")
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def remove_checkpoint_staging(folder) -> list[Path]:
    """Remove what interrupted :func:`save_checkpoint` calls left beside ``folder``.

    A staging folder ``.<name>.<random>.tmp`` may be incomplete: removed. A moved-aside
    ``.<name>.<random>.tmp.old`` is a complete checkpoint: it becomes ``folder`` again when
    the kill came after it was moved aside and before the new one was moved in, and is
    removed otherwise. Call it only while holding the run folder's lock. Returns the paths
    removed or restored.
    """
    folder = Path(folder)
    if not folder.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(folder.name)}\.[a-z0-9_]+\.tmp(\.old)?$")
    found = sorted(p for p in folder.parent.iterdir() if pattern.match(p.name))
    touched = []
    for old in (p for p in found if p.name.endswith(".old")):
        if not folder.exists() and (old / "trainer_state.pt").exists():
            old.rename(folder)
        else:
            shutil.rmtree(old, ignore_errors=True)
        touched.append(old)
    for staging in (p for p in found if not p.name.endswith(".old")):
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            staging.unlink(missing_ok=True)
        touched.append(staging)
    return touched
