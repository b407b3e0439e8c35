import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def pmrlhf_here(capsys):
    """``pmrlhf ARGS`` in this process, returning ``(exit status, stderr)``.

    A fresh Python costs ~5 s of CPU importing torch and transformers before a check made
    before anything runs, ~9 s before a tiny run that itself takes ~1 s; the CLI's own
    code is the same in-process. An exception the CLI does not turn into its one-line
    message propagates and fails the test, as a traceback would. Real processes remain
    where a process is the point (one-line errors end to end, a second process on a busy
    folder, torchrun, killed runs, ``pmrlhf reproduce`` stages).
    """
    from pmrlhf.cli import main

    def run(*args):
        try:
            status = main([str(arg) for arg in args])
        except SystemExit as exit:  # argparse's own usage errors
            status = exit.code
        return status, capsys.readouterr().err

    return run


class StopBeforeRun(Exception):
    """Raised by :func:`settings_reaching`'s stand-in once it has recorded the settings."""


@pytest.fixture
def settings_reaching(monkeypatch):
    """``settings_reaching(module, name)`` replaces the run function ``module.name``
    (called as ``(config, out, **kwargs)``) by one that records ``config`` and raises
    ``settings_reaching.stop``: a CLI test then checks what its options set, and nothing
    trains (the CLI lets that error propagate). Returns the list of recorded configs."""

    def patch(module, name):
        seen = []

        def capture(config, out, **kwargs):
            seen.append(config)
            raise StopBeforeRun

        monkeypatch.setattr(module, name, capture)
        return seen

    patch.stop = StopBeforeRun
    return patch
