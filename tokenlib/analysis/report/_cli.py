"""``python -m tokenlib.analysis.report`` and ``tokenlib report``: arguments, signals and
exit codes."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tokenlib.analysis.report._base import (
    CACHE_DIRNAME,
    QUICK_N_SIM,
    InventoryValidationError,
    NoNotebooksError,
    NotebookExecutionError,
    find_notebooks,
)
from tokenlib.analysis.report._build import build_report


def _parse_args(argv: Sequence[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog or "python -m tokenlib.analysis.report",
        description="Execute the analysis notebooks over an inventory and render an HTML report.",
    )
    parser.add_argument(
        "--inventory", default="default", help='flows CSV path (absolute or relative) or "default"'
    )
    parser.add_argument("--out", default="reports", help="report folder (replaced atomically)")
    parser.add_argument("--seed", type=int, default=None, help="override every notebook's SEED")
    parser.add_argument(
        "--quick", action="store_true", help=f"small simulations (N_SIM={QUICK_N_SIM})"
    )
    parser.add_argument("--notebooks", default=None, metavar="GLOB", help="notebooks to run")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--no-bundle", action="store_true", help="skip the single-file report.html and the PDF"
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help=f"recompute everything (the result cache lives in {CACHE_DIRNAME}/ next to --out)",
    )
    return parser.parse_args(argv)


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM / SIGHUP stop the build like Ctrl-C: children killed, temporary folder removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for s in previous:
        signal.signal(s, _raise_interrupt)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(
    argv: Sequence[str] | None = None,
    *,
    echo: Callable[[str], None] | None = None,
    prog: str | None = None,
) -> int:
    """Command-line entry point; returns 0 on success, 2 for bad input, 1 if a notebook fails.

    ``prog`` is the program name in usage and ``--help`` (``tokenlib report`` from the CLI)."""
    args = _parse_args(argv, prog)
    say = echo or (lambda msg: print(msg, file=sys.stderr))
    shown = args.inventory if args.inventory == "default" else Path(args.inventory).name
    try:
        with _interruptible():
            report = build_report(
                inventory=args.inventory,
                out=args.out,
                seed=args.seed,
                quick=args.quick,
                notebooks=find_notebooks(args.notebooks),
                jobs=args.jobs,
                progress=not args.no_progress,
                bundle=not args.no_bundle,
                cache=not args.no_cache,
            )
    except InventoryValidationError as exc:
        say(f"error: invalid inventory {shown!r}: {exc}")
        return 2
    except NoNotebooksError as exc:
        say(f"error: {exc} (--notebooks {args.notebooks!r})")
        return 2
    except NotebookExecutionError as exc:
        say(f"error: notebook failed, previous report left untouched: {exc}")
        return 1
    extras = "".join(f", {x}" for x in report.extras if x.endswith((".pdf", "report.html")))
    say(
        f"report: {report.out_dir / 'index.html'} ({len(report.pages)} notebooks, "
        f"{len(report.figures)} figures, {len(report.exports)} CSV{extras}) in "
        f"{report.seconds:.1f} s"
    )
    return 0
