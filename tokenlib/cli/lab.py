"""``tokenlib lab run``: the live TLS lab on loopback (the ``lab`` and ``analysis`` extras)."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Final

from tokenlib.cli._output import (
    EXIT_INVALID,
    EXIT_OK,
    CLIError,
    CLIParser,
    Subparsers,
    emit_json,
    escape,
    out,
    stderr,
)

__all__ = ["register"]

_COLUMNS: Final = (
    "replay_cache",
    "binding",
    "proxy_mode",
    "attack",
    "accepted",
    "status",
    "error",
    "flag",
    "latency_ms",
    "added_latency_ms",
)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _stop_like_ctrl_c() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the lab the way Ctrl-C does: ``KeyboardInterrupt`` unwinds
    it, so its servers, its private redis-server and its temporary folder of private keys
    are cleaned up instead of being left behind (issue 11). Previous handlers come back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for s in previous:
        signal.signal(s, _interrupt)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _cmd_lab_run(args: argparse.Namespace) -> int:
    import logging

    try:
        from tokenlib.lab.runner import check_outcomes, run_lab
    except ImportError as exc:
        raise CLIError(
            f"the lab needs the 'lab' and 'analysis' extras ({exc.name} missing)"
        ) from None
    # The lab injects Client-Cert on purpose; the RS's warning about it is expected here.
    asgi_log = logging.getLogger("tokenlib.integrations.asgi")
    level = asgi_log.level
    asgi_log.setLevel(logging.ERROR)
    try:
        with _stop_like_ctrl_c():
            results = run_lab(out=args.out, seed=args.seed, redis=False if args.no_redis else None)
    finally:
        asgi_log.setLevel(level)
    mismatches = check_outcomes(results)
    if args.json:
        emit_json(
            {
                "results": json.loads(results.to_json(orient="records")),
                "out": args.out,
                "mismatches": mismatches,
                "lab_seconds": results.attrs.get("lab_seconds"),
                "redis": results.attrs.get("redis"),
            }
        )
    else:
        shown = results[[c for c in _COLUMNS if c in results.columns]]
        # Cells hold what servers answered (error codes, descriptions): escaped per cell.
        cells = shown.astype(object).where(shown.notna(), "").map(escape)
        out(_escape_lines(cells.to_string(index=False)))
        verdict = "all as expected" if not mismatches else f"{len(mismatches)} unexpected"
        stderr(
            f"{len(results)} scenarios, {verdict}; lab ran {results.attrs.get('lab_seconds')} s"
            + ("" if results.attrs.get("redis") else " (no shared Redis runs)")
        )
        if args.out:
            stderr(f"wrote {args.out}")
        for line in mismatches:
            stderr(f"unexpected outcome: {line}")
    return EXIT_INVALID if mismatches else EXIT_OK


def _escape_lines(text: str) -> str:
    """A rendered multi-line table with each line escaped (belt and braces over the cells)."""
    return "\n".join(escape(line) for line in text.splitlines())


def register(sub: Subparsers[CLIParser], common: CLIParser) -> None:
    """Add ``lab run`` to the top-level sub-commands."""
    lab = sub.add_parser("lab", help="the live TLS lab on loopback (lab extra)", parents=[common])
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    run = lab_sub.add_parser(
        "run",
        parents=[common],
        help="run every binding x proxy mode x attack scenario over real HTTPS",
        description="Start the lab AS, two resource servers and a reverse proxy in each "
        "mode on 127.0.0.1 with throwaway certificates, send the scenario requests and "
        "print accepted/rejected per scenario. Exit 1 if an outcome differs from the "
        "expected one.",
    )
    run.add_argument("--out", metavar="CSV", help="write the results as CSV (atomically)")
    run.add_argument("--seed", type=int, default=0, help="seed for scenario order")
    run.add_argument("--no-redis", action="store_true", help="skip the shared Redis cache runs")
    run.set_defaults(func=_cmd_lab_run)
