"""``tokenlib probe``: the command-line face of :mod:`tokenlib.probe`.

``register(subparsers)`` adds the ``probe`` command to an existing argparse parser (the
``tokenlib`` console script); ``main(argv)`` runs it standalone (``python -m
tokenlib.probe``). Exit codes: 0 no must-level check failed, 1 a must-level check failed,
2 usage or input error (unreadable key, token without a binding, bad URL...).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokenlib.binding import Binding
from tokenlib.probe._text import terminal_safe

__all__ = ["main", "register"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_EPILOG = """\
examples:
  tokenlib probe https://api.example.com/orders/42 --token "$AT" --key dpop.pem --ca ca.pem
  tokenlib probe https://api.example.com/me --token-file at.txt --cert c.pem --cert-key c.key
  tokenlib probe URL --token "$AT" --key dpop.pem --junit probe.xml --html probe.html
  tokenlib probe https://as.example.com/token --mode as --refresh-token "$RT" \\
      --client-id app --key dpop.pem
exit: 0 no must-level failure, 1 a must-level check failed, 2 usage or input error
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``probe`` command to ``subparsers``; return its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "probe",
        help="audit whether a live server enforces DPoP / mTLS sender constraints",
        description=(
            "Send the catalogue of sender-constraint checks (RFC 9449, RFC 8705, the FAPI 2.0 "
            "conformance suite's DPoP resource-server negatives) to one resource server "
            "with one valid bound token, and report each check. A few dozen requests at a "
            "bounded rate, only to the given origin, redirects never followed."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _arguments(parser)
    parser.set_defaults(func=run)
    return parser


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the protected resource (or token endpoint with --mode as)")
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token", help="the bound access token (visible in ps: prefer a file)")
    token.add_argument(
        "--token-file", type=Path, help="file holding the access token ('-': standard input)"
    )
    parser.add_argument("--key", type=Path, help="the DPoP private key (PEM) the token is bound to")
    parser.add_argument("--cert", type=Path, help="client certificate (PEM) of an mTLS token")
    parser.add_argument("--cert-key", type=Path, help="private key (PEM) of --cert")
    parser.add_argument("--method", default="GET", help="HTTP method of the request (GET)")
    parser.add_argument(
        "--binding",
        choices=[b.value for b in (Binding.DPOP, Binding.MTLS, Binding.DPOP_MTLS)],
        help="binding of an opaque token (default: read from the token's cnf)",
    )
    parser.add_argument("--ca", type=Path, help="CA file that signs the server certificate")
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify the server certificate (lab only)"
    )
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (20)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (10)")
    parser.add_argument("--mode", choices=("rs", "as"), default="rs",
                        help="rs: resource server (default); as: token endpoint")  # fmt: skip
    parser.add_argument("--refresh-token", help="--mode as: a DPoP-bound refresh token")
    parser.add_argument("--client-id", help="--mode as: the public client's client_id")
    parser.add_argument("--par-url", help="--mode as: pushed authorization request endpoint")
    parser.add_argument("--json", action="store_true", help="print the JSON report")
    parser.add_argument("--junit", type=Path, help="write JUnit XML to this file")
    parser.add_argument("--html", type=Path, help="write an HTML page to this file")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the requests it would send, send nothing"
    )


def _error(message: str) -> int:
    sys.stderr.write(f"error: {terminal_safe(message, limit=2000)}\n")
    return EXIT_USAGE


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        if str(args.token_file) == "-":
            return sys.stdin.read().strip()
        try:
            return str(Path(args.token_file).read_text(encoding="ascii").strip())
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read --token-file {args.token_file}: {exc}") from None
    return str(args.token) if args.token is not None else None


def run(args: argparse.Namespace) -> int:
    """The ``probe`` handler: run, print, write files; return the exit code."""
    from tokenlib.probe.report import render_json, render_table, write_report
    from tokenlib.probe.runner import ProbeInputError, plan, probe, probe_token_endpoint

    try:
        token = _token(args)
    except ValueError as exc:
        return _error(str(exc))
    verify: Path | bool = args.ca if args.ca is not None else not args.insecure
    try:
        if args.mode == "as":
            if args.dry_run:
                return _error("--dry-run is available for --mode rs only")
            if args.key is None or not args.refresh_token or not args.client_id:
                return _error("--mode as needs --refresh-token, --client-id and --key")
            report, newest = probe_token_endpoint(
                args.url,
                refresh_token=args.refresh_token,
                client_id=args.client_id,
                key=args.key,
                par_url=args.par_url,
                verify=verify,
                rate=args.rate,
                timeout=args.timeout,
            )
            if newest != args.refresh_token:
                sys.stderr.write(
                    "note: the refresh token rotated; the newest one is in "
                    "the server's last answer (not printed)\n"
                )
        else:
            if token is None:
                return _error("give the bound access token with --token or --token-file")
            target = {
                "token": token,
                "key": args.key,
                "cert": args.cert,
                "cert_key": args.cert_key,
                "method": args.method,
                "binding": args.binding,
            }
            if args.dry_run:
                requests = plan(args.url, **target)
                for request in requests:
                    sys.stdout.write(f"[{request.check_id}]\n{request.describe(token)}\n\n")
                sys.stdout.write(
                    f"{len(requests)} requests (plus nonce retries if the server asks); "
                    "nothing was sent\n"
                )
                return EXIT_OK
            report = probe(
                args.url,
                **target,
                verify=verify,
                rate=args.rate,
                timeout=args.timeout,
            )
        write_report(report, junit=args.junit, html=args.html)
    except ProbeInputError as exc:
        return _error(str(exc))
    except OSError as exc:
        return _error(f"cannot write the report: {exc}")
    sys.stdout.write(render_json(report) if args.json else render_table(report))
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``probe`` standalone; return the exit code."""
    parser = argparse.ArgumentParser(prog="tokenlib probe")
    _arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return run(args)
