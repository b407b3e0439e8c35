"""The ``pmrlhf`` command line: thin parsers over library functions.

Each subcommand lives in its own module with ``register(subparsers)``; the handler it sets
returns an exit code. Errors a user can cause print one line on stderr and exit with status
2, never a traceback: every ``ValueError`` (which includes
:class:`~pmrlhf.errors.PmrlhfUserError` and :class:`~pmrlhf.errors.PmrlhfTypeError`, raised
by the argument checks) and a missing file or folder. Anything else (``KeyError``, a plain
``TypeError``, ``OSError``) is a bug or a failing machine and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import PmrlhfUserError

# Modules that add subcommands; each has ``register(subparsers)``.
_COMMAND_MODULES = ("theory", "simulate", "lm", "reproduce")

USER_ERRORS = (PmrlhfUserError, ValueError, FileNotFoundError, NotADirectoryError)
"""Exceptions printed as one line (exit status 2); ``PmrlhfTypeError`` is a ``ValueError``."""


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="pmrlhf",
        description="Preference-matching RLHF: derive, simulate and fine-tune.",
    )
    parser.add_argument("--version", action="version", version=f"pmrlhf {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"{__name__}.{name}":
                continue  # subcommand not shipped in this build
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("pmrlhf: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"pmrlhf {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
