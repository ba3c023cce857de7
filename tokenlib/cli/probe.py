"""``tokenlib probe ...``: wiring to ``tokenlib.probe._cli.register(subparsers)``.

The probe is imported only when the command line starts with ``probe``. In an installation
without :mod:`tokenlib.probe` (or without a dependency it needs) ``tokenlib probe`` says the
feature is unavailable, on one line with exit code 2; the command stays listed in
``tokenlib --help`` either way.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from tokenlib.cli._output import CLIError, CLIParser, Subparsers

__all__ = ["MODULE", "register"]

#: The module providing ``register(subparsers)`` for the probe commands.
MODULE = "tokenlib.probe._cli"

_HELP = "probe a live deployment's token and proof handling"


def _import(name: str) -> ModuleType:
    return importlib.import_module(name)


def register(sub: Subparsers[CLIParser], *, wanted: bool) -> None:
    """Add ``probe`` (the real commands when ``wanted``, else a listed placeholder)."""
    if not wanted:
        sub.add_parser("probe", help=_HELP, add_help=False)
        return
    try:
        probe_cli = _import(MODULE)
    except ImportError as exc:
        missing = exc.name or MODULE
        if missing == "tokenlib.probe" or missing.startswith("tokenlib.probe."):
            reason = "tokenlib.probe is not part of it"
        else:
            reason = f"the probe needs {missing}, which is not installed"
        raise CLIError(f"the probe feature is unavailable in this installation: {reason}") from None
    probe_cli.register(sub)
