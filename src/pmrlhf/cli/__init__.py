"""The ``pmrlhf`` command line: thin parsers over library functions.

Each subcommand lives in its own module with ``register(subparsers)``; the handler it sets
returns an exit code. A mistake a user can make prints one line on stderr and exits with
status 2, never a traceback: a :class:`~pmrlhf.errors.PmrlhfUserError` (raised by every
argument and file check, :class:`~pmrlhf.errors.PmrlhfTypeError` and
:class:`~pmrlhf.errors.FolderBusyError` included) and a missing file or folder. Anything
else (a plain ``ValueError``, ``TypeError``, ``KeyError``, ``OSError``) is a bug or a
failing machine and keeps its traceback. A reader of stdout that goes away
(``pmrlhf derive | head -n 1``) ends the command quietly with status 1; stdout that cannot
be written (``> /dev/full``) ends it with one line on stderr and status 1. argparse's own
errors are one line too (``pmrlhf lm run: error: argument --beta: ...``, status 2), and
every message names the subcommand that failed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .. import __version__
from .._malloc import keep_freed_memory
from .._validation import check_out_dir
from ..errors import PmrlhfUserError

# Modules that add subcommands; each has ``register(subparsers)``.
_COMMAND_MODULES = ("theory", "simulate", "lm", "reproduce")

USER_ERRORS = (PmrlhfUserError, FileNotFoundError, NotADirectoryError)
"""Exceptions printed as one line (exit status 2)."""


def is_user_error(error: BaseException) -> bool:
    """Whether the command line prints ``error`` as one line instead of a traceback: one of
    :data:`USER_ERRORS`. A plain ``ValueError`` or ``TypeError`` is a bug."""
    return isinstance(error, USER_ERRORS)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """argparse's help with each option's default appended, as
    :class:`argparse.ArgumentDefaultsHelpFormatter` does, except where the help text already
    states it (it says "default"), the default is ``None`` (the text says where the value
    comes from) or the option is an on/off flag, a required option or a positional."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text.lower()
            or action.default is None
            or action.default is False  # an on/off flag; 0 is a default to show
            or action.default == argparse.SUPPRESS
            or action.required
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr (``pmrlhf lm run:
    error: argument --beta: invalid float value: 'x'``) and exit status 2, without the
    usage block; ``--help`` still prints it. Subcommands' parsers are of this class too
    (``add_subparsers`` uses the parent's class)."""

    def error(self, message: str):
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message}\n")


def iter_parsers(parser: argparse.ArgumentParser):
    """``parser`` and every parser of its subcommands, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield from iter_parsers(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="pmrlhf",
        description="Preference-matching RLHF: derive, simulate and fine-tune.",
    )
    parser.add_argument("--version", action="version", version=f"pmrlhf {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    for each in iter_parsers(parser):  # read when help is printed, not when it is built
        each.formatter_class = DefaultsHelpFormatter
        each.set_defaults(prog=each.prog)  # the deepest subcommand's wins: error messages
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``pmrlhf ARGV``; returns the exit status (0 success, 2 a user's mistake, 130
    interrupted, 1 stdout closed by its reader or full, or a subcommand's own failure)."""
    keep_freed_memory()  # before torch allocates: fewer page faults in RL steps (_malloc)
    real = sys.stdout
    sys.stdout = _GuardedStdout(real)
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a reader gone away or a full disk shows here, not at exit
    except BrokenPipeError:
        # Python's recipe (library/signal.html, "Note on SIGPIPE"): whatever is left in
        # stdout's buffer goes to devnull, so that the flush at exit stays quiet as well.
        _stdout_to_devnull(real)
        return 1
    except _StdoutError as err:
        _stdout_to_devnull(real)
        print(f"pmrlhf: error: cannot write to stdout: {err}", file=sys.stderr)
        return 1
    finally:
        sys.stdout = real


class _StdoutError(Exception):
    """stdout refused output for another reason than a closed pipe (``> /dev/full``). Not
    an ``OSError``: argparse would swallow one while printing ``--help``."""


class _GuardedStdout:
    """``sys.stdout`` while :func:`main` runs: its write errors (a full disk) become
    :class:`_StdoutError`, told apart from the failures of other files."""

    def __init__(self, stream):
        self._stream = stream

    def _call(self, name, *args):
        try:
            return getattr(self._stream, name)(*args)
        except BrokenPipeError:
            raise
        except OSError as err:
            raise _StdoutError(err.strerror or str(err)) from None

    def write(self, text):
        return self._call("write", text)

    def writelines(self, lines):
        return self._call("writelines", lines)

    def flush(self):
        return self._call("flush")

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _stdout_to_devnull(stream) -> None:
    """Point ``stream``'s file descriptor at devnull: what is left in its buffer is dropped
    quietly when Python exits."""
    try:
        fileno = stream.fileno()
    except (OSError, ValueError):  # not a real file (a test's capture): nothing to redirect
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse would blame the top parser; name the subcommand given them
        prog = getattr(args, "prog", parser.prog)
        parser.exit(2, f"{prog}: error: unrecognized arguments: {' '.join(extra)}\n")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        if getattr(args, "out", None) is not None:
            check_out_dir(args.out, "--out")  # every command's --out, before any work
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("pmrlhf: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if not is_user_error(err):
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"{getattr(args, 'prog', 'pmrlhf')}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
