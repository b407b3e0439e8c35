"""Public names imported when first used (PEP 562), for a package's ``__init__``.

A package whose ``__init__`` imported every public name would load torch, scipy and
matplotlib for a caller that needs one small class (the command line's parsers, a task
file's population). With :func:`lazy_names` the ``__init__`` lists each name and the module
that defines it; ``from package import name`` and ``package.name`` work as before.
"""

from __future__ import annotations

import importlib
import sys


def lazy_names(package: str, where: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package``: ``where`` maps each public name to the
    module (relative to ``package``) that defines it; a name is imported on first use and
    then kept in the package's namespace."""

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
