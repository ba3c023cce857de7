"""The ``tokenlib`` command line: keys, access tokens, DPoP proofs, thumbprints, the lab.

Thin wrappers over the library, for prototypes and for debugging a deployment::

    tokenlib keys generate --alg ES256 --out client.pem     # key 0600, public JWK printed
    tokenlib token issue --key as.pem --iss https://as.example --sub alice \\
        --client-id app --aud https://api.example --dpop-key client.pem
    tokenlib token inspect TOKEN --jwks https://as.example/jwks --issuer ... --audience ...
    tokenlib proof create --key client.pem --htm GET --htu https://api.example/r
    tokenlib proof verify PROOF --htm GET --htu https://api.example/r --explain
    tokenlib thumbprint client.pem                           # RFC 7638 jkt or x5t#S256
    tokenlib lab run --out lab.csv                           # the live TLS lab (lab extra)

One module per command group (:mod:`~tokenlib.cli.keys`, :mod:`~tokenlib.cli.token`,
:mod:`~tokenlib.cli.proof`, :mod:`~tokenlib.cli.thumbprint`, :mod:`~tokenlib.cli.lab`,
:mod:`~tokenlib.cli.inventory`, :mod:`~tokenlib.cli.report`, :mod:`~tokenlib.cli.probe`);
everything written goes through :mod:`tokenlib.cli._output`, everything read through
:mod:`tokenlib.cli._input`.

Exit codes (the same for every command; tested per command in ``tests/cli``):

* 0 success -- the command did what was asked; for ``token inspect --jwks`` and
  ``proof verify``, the token or proof verified. Decoding without ``--jwks`` verifies
  nothing, so it exits 0 even for an expired token: the token is marked ``EXPIRED`` (or
  ``NOT YET VALID``) on stdout, warned about on stderr, and ``"expired": true`` in ``--json``;
* 1 a token or proof did not verify (``token inspect --jwks``, ``proof verify``, a
  token that cannot even be decoded), or ``lab run`` outcomes differ from the expected ones;
  ``report`` returns 1 when a notebook fails;
* 2 a usage or input error: a bad or missing argument, an unreadable or wrong kind of file
  (a certificate given as ``--key``), a malformed ``--htu``, a lower-case standard
  ``--htm`` (``get``: methods are case-sensitive, RFC 9110 §9.1), a non-finite ``--now``,
  an unreachable JWKS, a missing extra (lab, inventory, report, probe);
* 130 interrupted (Ctrl-C).

``--json`` (on every command, before or after it): with exit code 0 or 1, stdout holds
exactly one JSON document (a verification failure is a record with ``"valid": false``,
``error``, ``check`` and ``details``); with exit code 2, stdout is empty and the reason is
one line on stderr. JSON is written ASCII-only (``json.dumps`` escapes), so it is valid
JSON and terminal-safe whatever the values hold. Errors always go to stderr as one line.

Terminal safety: every value that came from a token, proof, key file, JWKS or server is
escaped before it reaches the terminal, in tables, explain views and error lines alike
(:func:`tokenlib.cli._output.escape`): C0/C1 control characters, ESC sequences (OSC 52
clipboard writes, window titles, cursor movement), DEL, bidi overrides and isolates and
other invisible format characters are shown as ``\\x1b``, ``\\u202e``..., newlines as
``\\n``. Explain views show NumericDates as ISO 8601 UTC with the epoch value and durations
with their unit (``exp : 2025-10-09T08:58:20Z (1760000300 epoch s)``, ``3300 s (55 min 0 s)``).

Nothing secret is printed unless asked for (``keys generate --show-private``); an issued
token or created proof is the command's output and is printed only on stdout.

Only the standard library and the core are imported at start-up, so ``tokenlib keys
generate`` works with the core dependencies alone; the lab, inventory, report and probe
commands import their extras when they run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence

from tokenlib import __version__
from tokenlib.cli import inventory, keys, lab, probe, proof, report, thumbprint, token
from tokenlib.cli._output import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    CLIError,
    CLIParser,
    stderr,
)

__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_USAGE", "CLIError", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def _common() -> CLIParser:
    """The parent parser giving every (sub)command ``--json``."""
    common = CLIParser(add_help=False)
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,  # keep a top-level `tokenlib --json ...`
        help="machine-readable JSON on stdout",
    )
    return common


def _command_index(argv: Sequence[str]) -> int:
    """Where the command is: the first word that is not a top-level option (``--json``)."""
    return next((i for i, word in enumerate(argv) if not word.startswith("-")), len(argv))


def build_parser(argv: Sequence[str] = ()) -> CLIParser:
    """The argument parser (``argv`` decides whether inventory/probe commands are imported)."""
    common = _common()
    parser = CLIParser(
        prog=PROG,
        description="Issue, inspect and verify bearer, mTLS-bound and DPoP-bound access tokens.",
        epilog="Exit codes: 0 ok, 1 verification failed or invalid, 2 usage or input error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    keys.register(sub, common)
    token.register(sub, common)
    proof.register(sub, common)
    thumbprint.register(sub, common)
    lab.register(sub, common)
    index = _command_index(argv)
    first = argv[index] if index < len(argv) else None
    inventory.register(sub, wanted=first == "inventory")
    report.register(sub, common)
    probe.register(sub, wanted=first == "probe")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list[:1] == ["report"]:
            return report.run(args_list[1:])
        if args_list[:2] == ["--json", "report"]:
            return report.run(args_list[2:], as_json=True)
        parser = build_parser(args_list)
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        if "--json" in args_list[: _command_index(args_list)]:
            args.json = True  # `tokenlib --json CMD`, even when CMD's own --json defaults False
        handler: Handler = args.func
        return handler(args)
    except CLIError as exc:
        stderr(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        stderr("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `tokenlib token inspect ... | head`: not an error
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is quiet
        return EXIT_OK
