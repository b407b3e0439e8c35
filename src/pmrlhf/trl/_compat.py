"""Which TRL this subpackage works with, checked once on import."""

from __future__ import annotations

from ..errors import PmrlhfTypeError

INSTALL = "pip install 'pmrlhf[trl]'"

TESTED_TRL = ("1.16",)
"""TRL minor versions whose trainer internals :mod:`pmrlhf.trl` is tested against
(``_get_per_token_logps_and_entropies``, ``_generate_and_score_completions``,
``_generate``, the ``beta`` switch and the ``_metrics`` pool); pinned by the ``trl``
extra."""


def check_trl_version(version: str | None = None) -> str:
    """Return the installed (or given) TRL version; raise if it is missing or untested.

    Raises
    ------
    ImportError
        TRL is not installed, or its minor version is not in :data:`TESTED_TRL`; the
        message names the install command.
    TypeError
        ``version`` is given and not a string.
    """
    if version is None:
        try:
            import trl
        except ImportError as err:
            raise ImportError(
                f"pmrlhf.trl needs TRL ({' or '.join(TESTED_TRL)}.x): {INSTALL}"
            ) from err
        version = trl.__version__
    if not isinstance(version, str):
        raise PmrlhfTypeError(f"version must be a string, got {version!r}")
    from packaging.version import InvalidVersion, Version

    try:
        parsed = Version(version)
    except InvalidVersion:
        raise ImportError(
            f"pmrlhf.trl cannot read the TRL version {version!r}: {INSTALL}"
        ) from None
    minor = f"{parsed.major}.{parsed.minor}"
    if minor not in TESTED_TRL:
        raise ImportError(
            f"pmrlhf.trl relies on TRL trainer internals and is tested with TRL "
            f"{', '.join(t + '.x' for t in TESTED_TRL)}; found TRL {version}. Install a tested "
            f"version: {INSTALL}"
        )
    return version
