"""``pmrlhf lm paper``: the paper's experiment on free text, end to end, each stage a TRL
trainer (:mod:`.paper_train`) and the audit (:mod:`.paper_audit`):

1. ``sft``: ``OUT/sft/`` (TRL's ``SFTTrainer`` on the chosen responses of the train split);
2. ``reward``: ``OUT/reward/`` (TRL's ``RewardTrainer`` from the SFT model's body);
3. ``rl``: ``OUT/rl/<method>/seed<k>/`` (:class:`~pmrlhf.trl.PMRLOOTrainer` per method and
   seed, the SFT model the reference, the reward model's folder the reward);
4. ``audit``: ``OUT/audit/`` (``summary.json``, ``summary.csv``, ``pairs.csv``, the
   histograms of implied preferences).

Each unit of work (a stage; an RL run per method and seed) leaves ``done.json`` in its
folder: a fingerprint of its settings and of the runs it was made from
(:mod:`pmrlhf._fingerprint`), and a run id of its own. A finished unit whose fingerprint
matches is skipped; a changed setting reruns it and, since its run id changes, every unit
made from it. ``stages`` runs some stages only: a stage whose input is missing or stale is
refused in one line, before anything is written. ``OUT`` is locked for the run
(:func:`pmrlhf._lock.run_folder`); ``config.yaml`` holds the settings of the latest run.

Inside a unit: with ``save_steps`` TRL checkpoints a training stage every that many steps in
``OUT/.trainer/<unit>/``, stamped with the unit's fingerprint. A unit that stops (a crash,
a kill, the machine's end) keeps that folder, and the next run with the same settings and
inputs resumes from its latest checkpoint (``done.json`` then names it in
``resumed_from``); other settings start it afresh. A finished unit removes its folder.

Under ``accelerate launch`` / ``torchrun`` every process runs the training stages (TRL
shares the batches), the main process alone writes the markers and the audit, which it
runs alone.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from .._fingerprint import fingerprint, load_stored, store
from .._io import atomic_write_text
from .._lock import run_folder
from .._validation import check_out_dir
from ..errors import PmrlhfTypeError, PmrlhfUserError
from ..lm_experiments.commands.paper_config import STAGES, PaperConfig, check_stages
from ..lm_experiments.data.pair_splits import load_pairs_dataset

MARKER = "done.json"


@dataclass
class Unit:
    """One piece of work: its stage, folder, settings and the units it is made from."""

    stage: str
    name: str
    folder: Path
    settings: dict
    needs: list[str] = field(default_factory=list)
    method: object = None
    seed: int | None = None


def method_folder(name: str) -> str:
    """A method's folder under ``OUT/rl``: its name with spaces as underscores."""
    return name.replace(" ", "_")


def _units(config: PaperConfig, out: Path, identity: dict) -> dict[str, Unit]:
    shared = {
        k: getattr(config, k)
        for k in ("model", "dtype", "bf16", "lora", "gradient_checkpointing", "prompt_format")
    }
    seed = config.seeds[0]
    units = {
        "sft": Unit(
            "sft",
            "sft",
            out / "sft",
            {**shared, "sft": asdict(config.sft), "seed": seed, "data": identity},
        ),
        "reward": Unit(
            "reward",
            "reward",
            out / "reward",
            {**shared, "reward": asdict(config.reward), "seed": seed, "data": identity},
            ["sft"],
        ),
    }
    for method in config.parsed_methods():
        for s in config.seeds:
            name = f"rl/{method_folder(method.name)}/seed{s}"
            settings = {
                **shared,
                "rl": asdict(config.rl),
                "method": asdict(method),
                "seed": s,
                "data": identity,
            }
            units[name] = Unit("rl", name, out / name, settings, ["sft", "reward"], method, s)
    rl = [n for n in units if n.startswith("rl/")]
    settings = {"audit": asdict(config.audit), "alpha": config.audit_alpha(), "data": identity}
    units["audit"] = Unit("audit", "audit", out / "audit", settings, ["sft", "reward", *rl])
    return units


def _run_id(unit: Unit) -> str | None:
    """The run id in ``unit``'s marker (None: no finished run)."""
    import json

    try:
        return json.loads((unit.folder / MARKER).read_text()).get("run")
    except (OSError, ValueError, AttributeError):
        return None


def _key(unit: Unit, units: dict) -> str:
    return fingerprint({"settings": unit.settings, "from": [_run_id(units[n]) for n in unit.needs]})


def plan(units: dict[str, Unit], stages, restart: bool) -> list[str]:
    """The units to run, in order; refuses (one line) a requested unit whose input is
    neither finished with the same settings nor run now."""
    runs: list[str] = []
    fresh: dict[str, bool] = {}
    for name, unit in units.items():
        upstream_runs = any(n in runs for n in unit.needs)
        saved = None if upstream_runs else load_stored(unit.folder / MARKER, _key(unit, units))
        fresh[name] = saved is not None and not (restart and unit.stage in stages)
        if unit.stage not in stages:
            continue
        for need in unit.needs:
            if not fresh[need] and need not in runs:
                raise PmrlhfUserError(
                    f"stage {unit.stage} needs the {units[need].stage} stage's output "
                    f"({units[need].folder}), which is missing or made with other settings: "
                    f"run that stage too (--stages {units[need].stage} ... {unit.stage})"
                )
        if not fresh[name]:
            runs.append(name)
    return runs


def run_paper(
    config: PaperConfig, out, *, stages=STAGES, restart: bool = False, progress: bool = True
) -> dict:
    """Run ``stages`` of the experiment ``config`` in the folder ``out`` (module docs).

    Returns ``{unit name: its done.json}`` of every unit (the audit's holds its summary).

    Raises
    ------
    PmrlhfUserError
        A bad setting or data, or a requested stage whose input is missing or stale (all
        before anything is written).
    FolderBusyError
        Another process is running in ``out``.
    """
    if not isinstance(config, PaperConfig):
        raise PmrlhfTypeError(f"config must be a PaperConfig, got {type(config).__name__}")
    config.validate()
    stages = check_stages(stages)
    out = check_out_dir(out, "out")
    data = load_pairs_dataset(
        config.data, train_limit=config.train_pairs, test_limit=config.test_pairs
    )
    units = _units(config, out, data.identity)
    todo = plan(units, stages, restart)
    import torch
    from accelerate import PartialState

    # Under accelerate launch / torchrun: the processes (on CPUs too, where accelerate asks
    # for cpu=True to see them); in a plain run one process.
    state = PartialState(cpu=not torch.cuda.is_available())
    state.wait_for_everyone()  # every process planned before any marker changes
    main = state.is_main_process
    with run_folder(out, lock=main):
        if main:
            atomic_write_text(
                out / "config.yaml", yaml.safe_dump(config.settings(), sort_keys=False)
            )
        for name in todo:
            unit = units[name]
            if unit.stage == "audit" and not main:
                continue
            scratch, resumed = out / ".trainer" / unit.name.replace("/", "-"), None
            if unit.stage != "audit":
                if main:
                    resumed = _prepare_scratch(scratch, _key(unit, units))
                    if progress and resumed:
                        print(f"[lm paper] {name}: resuming from {resumed}")
                state.wait_for_everyone()
            if progress and main:
                print(f"[lm paper] {name}: running")
            try:
                result = _run_unit(unit, config, data, units, out, scratch)
            except BaseException:
                if main and not config.save_steps:
                    shutil.rmtree(scratch, ignore_errors=True)
                raise
            if main:
                if resumed:
                    result["resumed_from"] = Path(resumed).name
                store(unit.folder / MARKER, _key(unit, units), run=uuid.uuid4().hex, **result)
                shutil.rmtree(scratch, ignore_errors=True)
            if unit.stage != "audit":  # the audit is the main process's alone, and last
                state.wait_for_everyone()
        if progress and main:
            skipped = [n for n, u in units.items() if u.stage in stages and n not in todo]
            if skipped:
                print(f"[lm paper] finished with these settings, skipped: {', '.join(skipped)}")
    return {name: load_stored(u.folder / MARKER, _key(u, units)) for name, u in units.items()}


def _prepare_scratch(scratch: Path, key: str) -> str | None:
    """Keep ``scratch`` (TRL's checkpoints of a stopped unit) only if it was made with the
    same settings and inputs, ``key``; else empty it. Returns the checkpoint to resume
    from, or None."""
    from .paper_train import latest_checkpoint

    stamp = scratch / "unit.json"
    kept = stamp.exists() and load_stored(stamp, key) is not None
    if not kept:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        store(stamp, key)
    return latest_checkpoint(scratch) if kept else None


def _run_unit(unit: Unit, config: PaperConfig, data, units: dict, out: Path, scratch) -> dict:
    from .paper_train import train_policy, train_reward, train_sft

    if unit.stage == "sft":
        return train_sft(config, data.train, unit.folder, scratch)
    if unit.stage == "reward":
        return train_reward(
            config, units["sft"].folder, data.train, data.test, unit.folder, scratch
        )
    if unit.stage == "rl":
        prompts = list(dict.fromkeys(tuple(_frozen(m) for m in p.messages) for p in data.train))
        prompts = [[dict(m) for m in prompt] for prompt in prompts]
        return train_policy(
            config, unit.method, unit.seed, units["sft"].folder, units["reward"].folder,
            prompts, unit.folder, scratch,
        )  # fmt: skip
    from .paper_audit import run_audit

    folders = {"sft": units["sft"].folder, "reward": units["reward"].folder, "rl": {}}
    for other in units.values():
        if other.stage == "rl":
            folders["rl"].setdefault(other.method.name, {})[other.seed] = other.folder
    return run_audit(config, data, folders, unit.folder)


def _frozen(message: dict) -> tuple:
    return tuple(sorted(message.items()))
