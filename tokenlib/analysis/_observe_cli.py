"""``tokenlib inventory observe LOG... --format {envoy,nginx,alb,jsonl} --out DIR``.

:func:`add_observe_parser` adds the subcommand to the ``inventory`` command's subparsers.
Exit codes: 0 success, 2 usage or input error (unreadable or malformed logs or registrations,
an output directory that cannot be written). Findings are not errors: they are the output.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_observe_parser"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _safe(value: object) -> str:
    """Log-derived text for a terminal: control characters shown as escapes."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def add_observe_parser(inventory_subparsers: Any) -> None:
    """Add ``observe`` to the ``tokenlib inventory`` subcommands."""
    from tokenlib.analysis.observe import DEFAULT_MEMORY_LIMIT, FORMATS

    obs = inventory_subparsers.add_parser(
        "observe",
        help="observed flows and discrepancies from gateway/RS access logs",
        description=(
            "Read access logs (Envoy JSON, NGINX with tokenlib's log_format, AWS ALB, or "
            "tokenlib's JSON lines; .gz and globs streamed), write the observed inventory "
            "(flows.csv, services.csv, provenance.csv) and discrepancies.csv into --out. Only "
            "the Authorization scheme is used, never a token. See README 'Observed usage'."
        ),
    )
    obs.add_argument("logs", nargs="+", metavar="LOG", help="log files or globs (.gz allowed)")
    obs.add_argument("--format", choices=FORMATS, required=True, help="log format")
    obs.add_argument("--out", type=Path, required=True, help="output directory")
    obs.add_argument(
        "--registrations",
        type=Path,
        default=None,
        help="inventory directory from `tokenlib inventory import` to compare against",
    )
    obs.add_argument(
        "--memory-limit",
        default=DEFAULT_MEMORY_LIMIT,
        help=f"DuckDB memory limit (default {DEFAULT_MEMORY_LIMIT}; it spills beyond)",
    )
    obs.add_argument("--json", action="store_true", help="print the findings as JSON")
    obs.set_defaults(func=_cmd_observe)


def _cmd_observe(args: argparse.Namespace) -> int:
    from tokenlib.analysis.observe import ObserveError, observe, write_observed

    out = Path(args.out)
    if out.suffix.lower() in (".csv", ".parquet", ".gz") or out.is_file():
        sys.stderr.write(f"error: --out {_safe(out)} must be a directory\n")
        return 2
    try:
        result = observe(
            args.logs,
            format=args.format,
            registrations=args.registrations,
            memory_limit=args.memory_limit,
        )
        written = write_observed(result, out)
    except ObserveError as exc:
        if args.json:
            sys.stdout.write(json.dumps({"ok": False, "error": str(exc)}, indent=2) + "\n")
        else:
            sys.stderr.write(f"error: {_safe(exc)}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"error: cannot write to {_safe(out)}: {_safe(exc.strerror or exc)}\n")
        return 2
    if args.json:
        payload = {"ok": True, "out": str(out), **result.to_dict()}
        payload["written"] = {k: str(v) for k, v in written.items()}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    s = result.summary
    lines = [
        f"read {s.requests} requests over {s.days} day(s) from {len(result.files)} "
        f"{args.format} log input(s)",
        f"wrote {len(result.flows)} observed flows and {len(result.services)} services to "
        f"{_safe(out)}",
    ]
    counts = result.to_dict()["findings_by_kind"]
    if result.registrations is not None:
        lines.append(
            "discrepancies.csv: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
            if any(counts.values())
            else "discrepancies.csv: none"
        )
        for f in result.findings()[:20]:
            route = f" {_safe(f['route'])}" if f["route"] else ""
            lines.append(
                f"  {f['kind']}: {_safe(f['client_id'])} -> {_safe(f['resource_server'])}"
                f"{route} ({f['count']})"
            )
        if len(result.discrepancies) > 20:
            lines.append(f"  ... and {len(result.discrepancies) - 20} more (discrepancies.csv)")
    lines.extend(f"note: {_safe(n)}" for n in result.notes)
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
