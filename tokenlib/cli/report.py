"""``tokenlib report ...``: every argument after ``report`` goes to
:func:`tokenlib.analysis.report.main` (which has its own parser), with ``tokenlib report`` as
the program name in its usage and ``--help``.

``--json`` is taken off the arguments before they are handed over: the build then runs
without a progress bar and its messages (the report's path and counts, or the one-line
error) come back as one JSON record on stdout, ``{"exit_code", "ok", "messages"}``, with the
same exit code (0 built, 1 a notebook failed). Bad input (exit 2) keeps the contract of every
command: stdout stays empty and the one-line reason goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Final

from tokenlib.cli._output import (
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    CLIError,
    CLIParser,
    Subparsers,
    emit_json,
    escape,
)

__all__ = ["PROG_NAME", "register", "run"]

PROG_NAME: Final = f"{PROG} report"


def run(argv: Sequence[str], *, as_json: bool = False) -> int:
    """Run the report builder with ``argv``; its exit codes are already 0/1/2."""
    args = list(argv)
    if "--json" in args[: args.index("--") if "--" in args else len(args)]:
        as_json = True
        args.remove("--json")
    try:
        from tokenlib.analysis import report
    except ImportError as exc:
        raise CLIError(
            f"the report command needs the 'analysis' and 'notebooks' extras ({exc.name} missing)"
        ) from None
    messages: list[str] = []
    if as_json and "--no-progress" not in args:
        args.append("--no-progress")
    try:
        if as_json:
            code = report.main(args, prog=PROG_NAME, echo=messages.append)
        else:
            code = report.main(args, prog=PROG_NAME, echo=_echo)
    except SystemExit as exc:  # its own argparse: --help or a usage error
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    code = int(code or 0)
    if as_json and code == EXIT_USAGE:  # the --json contract: exit 2 leaves stdout empty
        for message in messages:
            _echo(message)
    elif as_json:
        emit_json({"exit_code": code, "ok": code == EXIT_OK, "messages": messages})
    return code


def _echo(message: str) -> None:
    """The builder's progress and error lines on stderr, escaped (they name input files)."""
    print(escape(message), file=sys.stderr)


def register(sub: Subparsers[CLIParser], common: CLIParser) -> None:
    """List ``report`` in ``tokenlib --help``; ``main`` hands its arguments over unparsed."""
    del common  # report.main parses its own options (``--json`` is handled in ``run``)
    report = sub.add_parser(
        "report",
        help="execute the notebooks and render reports/ (analysis + notebooks extras)",
        add_help=False,
    )
    report.add_argument("rest", nargs=argparse.REMAINDER)
