"""``tokenlib inventory ...``: wiring to :func:`tokenlib.analysis._inventory_cli.register`.

The inventory commands need pandas (the ``analysis`` extra), so they are imported only when
the command line starts with ``inventory``; otherwise a placeholder keeps the command listed
in ``tokenlib --help`` without importing anything.
"""

from __future__ import annotations

import importlib

from tokenlib.cli._output import CLIError, CLIParser, Subparsers

__all__ = ["register"]

_HELP = "generate, validate and summarise OAuth flow inventories (analysis extra)"


def register(sub: Subparsers[CLIParser], *, wanted: bool) -> None:
    """Add ``inventory`` (the real commands when ``wanted``, else a listed placeholder)."""
    if wanted:
        try:  # import_module consults sys.modules first, as a plain import of a name does not
            _inventory_cli = importlib.import_module("tokenlib.analysis._inventory_cli")
        except ImportError as exc:
            raise CLIError(
                f"the inventory commands need the 'analysis' extra ({exc.name} missing)"
            ) from None
        _inventory_cli.register(sub)
        return
    sub.add_parser("inventory", help=_HELP, add_help=False)
