"""Which TRL this subpackage works with, checked once on import, and the TRL internals it
uses, imported here only, so that a TRL release that moves one is adapted in this file.

The supported range is TRL :data:`MIN_TRL` and newer within the same major version
(``trl>=1.16,<2``, the ``trl`` extra):

* a minor version in :data:`TESTED_TRL` (the newest TRL on PyPI when this was written
  included) is imported silently;
* a newer minor version of the same major version is imported with a ``UserWarning`` (it
  is untested), provided it still has every internal of :data:`TRAINER_INTERNALS` and the
  helpers imported below; a missing one raises an ``ImportError`` naming it;
* an older version, another major version or an unreadable one raises an ``ImportError``.
"""

from __future__ import annotations

import warnings

import torch

from ..errors import PmrlhfTypeError

INSTALL = "pip install 'pmrlhf[trl]'"

MIN_TRL = "1.16"
"""The oldest TRL :mod:`pmrlhf.trl` supports (the ``trl`` extra's floor)."""

TESTED_TRL = ("1.16",)
"""TRL minor versions whose trainer internals :mod:`pmrlhf.trl` is tested against
(:data:`TRAINER_INTERNALS`, the ``beta`` switch and the ``_metrics`` pool); 1.16 was the
newest TRL on PyPI when this was last checked."""

TRAINER_INTERNALS = {
    "RLOOTrainer": ("_get_per_token_logps_and_entropies", "_generate_and_score_completions"),
    "GRPOTrainer": ("_get_per_token_logps_and_entropies", "_generate"),
}
"""The private methods of TRL's trainers that :mod:`pmrlhf.trl` overrides or calls."""

SUPPORTED = "supported"
UNTESTED = "untested"


def trl_support(version: str) -> str:
    """Where TRL ``version`` stands: :data:`SUPPORTED` (a minor version in
    :data:`TESTED_TRL`) or :data:`UNTESTED` (a newer minor version of the same major
    version as :data:`MIN_TRL`). A pure function of the string: nothing is imported.

    Raises
    ------
    TypeError
        ``version`` is not a string.
    ImportError
        ``version`` is unreadable, older than :data:`MIN_TRL` or of another major version;
        the message names the install command.
    """
    if not isinstance(version, str):
        raise PmrlhfTypeError(f"version must be a string, got {version!r}")
    from packaging.version import InvalidVersion, Version

    try:
        parsed = Version(version)
    except InvalidVersion:
        raise ImportError(
            f"pmrlhf.trl cannot read the TRL version {version!r}: {INSTALL}"
        ) from None
    floor = Version(MIN_TRL)
    if f"{parsed.major}.{parsed.minor}" in TESTED_TRL:
        return SUPPORTED
    if (parsed.major, parsed.minor) < (floor.major, floor.minor) or parsed.major != floor.major:
        raise ImportError(
            f"pmrlhf.trl relies on TRL trainer internals and supports TRL >= {MIN_TRL}, "
            f"< {floor.major + 1} (tested: {', '.join(t + '.x' for t in TESTED_TRL)}); found "
            f"TRL {version}. Install a supported version: {INSTALL}"
        )
    return UNTESTED


def check_trl_version(version: str | None = None) -> str:
    """Return the installed (or given) TRL version; raise if it is missing or unsupported,
    warn if it is untested (:func:`trl_support`).

    Raises
    ------
    ImportError
        TRL is not installed, or its version is outside the supported range; the message
        names the install command.
    TypeError
        ``version`` is given and not a string.

    Warns
    -----
    UserWarning
        A newer minor version than those in :data:`TESTED_TRL`.
    """
    if version is None:
        try:
            import trl
        except ImportError as err:
            raise ImportError(f"pmrlhf.trl needs TRL (>= {MIN_TRL}): {INSTALL}") from err
        version = trl.__version__
    if trl_support(version) == UNTESTED:
        warnings.warn(
            f"pmrlhf.trl is tested with TRL {', '.join(t + '.x' for t in TESTED_TRL)}; TRL "
            f"{version} is newer and untested: pmrlhf.trl overrides TRL trainer internals "
            "that a newer release may change. Check the penalty it logs, or install a tested "
            f"version ({INSTALL} with trl=={TESTED_TRL[-1]}.*)",
            UserWarning,
            stacklevel=2,
        )
    return version


def check_trainer_internals(trainers: dict) -> None:
    """Raise an ``ImportError`` naming each method of :data:`TRAINER_INTERNALS` missing
    from ``trainers`` (name -> TRL trainer class)."""
    missing = [
        f"{name}.{method}"
        for name, methods in TRAINER_INTERNALS.items()
        for method in methods
        if not callable(getattr(trainers[name], method, None))
    ]
    if missing:
        raise ImportError(
            f"pmrlhf.trl overrides TRL trainer internals that this TRL lacks: "
            f"{', '.join(missing)}. Install a tested TRL ({', '.join(TESTED_TRL)}): {INSTALL}"
        )


def epochs_done(checkpoint) -> int:
    """The epochs a TRL checkpoint folder has finished (its ``trainer_state.json``)."""
    import json
    from pathlib import Path

    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return int((state.get("epoch") or 0.0) + 1e-9)  # 2.0 may be stored as 1.9999...


def resume_sampler_order(trainer, checkpoint) -> None:
    """Make ``trainer`` resumed from ``checkpoint`` draw the prompt order an uninterrupted
    run draws. transformers restores the global RNG on resume but TRL's ``RepeatSampler``
    (TRL 1.16) shuffles with a generator of its own, seeded anew: without this the resumed
    run repeats the first epoch's order and samples other completions from then on. The
    shuffles of the finished epochs are drawn when TRL builds the sampler."""
    epochs = epochs_done(checkpoint)
    build = trainer._get_train_sampler

    def sampler(*args, **kwargs):
        built = build(*args, **kwargs)
        generator = getattr(built, "generator", None) if getattr(built, "shuffle", False) else None
        for _ in range(epochs if generator is not None else 0):
            torch.randperm(built.num_samples, generator=generator)  # as RepeatSampler.__iter__
        return built

    trainer._get_train_sampler = sampler


def _import_internals():
    """TRL's private helpers :mod:`pmrlhf.trl` uses, imported with a message naming the
    supported range when a TRL release has moved one."""
    try:
        from trl import GRPOTrainer, RLOOTrainer
        from trl.models.utils import disable_gradient_checkpointing
        from trl.trainer.utils import get_config_model_id, pad, use_adapter
    except ImportError as err:
        raise ImportError(
            f"pmrlhf.trl cannot import a TRL internal it uses ({err}); install a tested TRL "
            f"({', '.join(TESTED_TRL)}): {INSTALL}"
        ) from err
    check_trainer_internals({"RLOOTrainer": RLOOTrainer, "GRPOTrainer": GRPOTrainer})
    return disable_gradient_checkpointing, get_config_model_id, pad, use_adapter


check_trl_version()
disable_gradient_checkpointing, get_config_model_id, pad, use_adapter = _import_internals()
