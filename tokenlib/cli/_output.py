"""Everything the CLI writes: escaping, ``--json`` records, error lines, the explain view.

Every string that reaches a terminal goes through :func:`escape` first, because most of
what the CLI shows came from somewhere else: a token, a DPoP proof, a key or JWKS file, a
server's answer. A forged ``typ`` header, ``jti`` or ``htm`` may carry ESC sequences (retitle
the window, redraw the screen, write the clipboard with OSC 52), C1 controls or Unicode
bidi overrides (make ``evil`` read as ``live``); escaped, they show as ``\\x1b``,
``\\x9b``, ``\\u202e`` and do nothing. ``--json`` output needs no such step:
``json.dumps`` with ``ensure_ascii`` writes every control and non-ASCII character as a
``\\uXXXX`` escape, and the record stays valid JSON with the value intact.

Exit codes (the contract every command keeps):

* :data:`EXIT_OK` (0) -- success; for a check, the token or proof verified;
* :data:`EXIT_INVALID` (1) -- a token or proof did not verify, or an expected outcome
  differed (``lab run``);
* :data:`EXIT_USAGE` (2) -- a usage or input problem: bad argument, unreadable or
  unusable file, malformed URL, unreachable JWKS.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, NoReturn

from tokenlib.errors import TokenError

__all__ = [
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "CLIError",
    "CLIParser",
    "duration",
    "emit_json",
    "error_record",
    "escape",
    "explain_lines",
    "iso_utc",
    "out",
    "report_invalid",
    "stderr",
]

EXIT_OK: Final = 0
EXIT_INVALID: Final = 1
EXIT_USAGE: Final = 2

PROG: Final = "tokenlib"

# Claims and explain-view keys holding a NumericDate (RFC 7519 §2) or a duration in seconds.
_DATE_KEYS: Final = frozenset(
    {"exp", "nbf", "iat", "now", "server_time", "expires_at", "issued_at", "not_before"}
)
_SECONDS_KEYS: Final = frozenset(
    {"leeway", "expired_for", "offset", "age", "max_age", "skew", "lifetime", "retry_after"}
)
_SHORT_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class CLIError(Exception):
    """A usage or input problem: reported on one stderr line, exit code 2."""


class CLIParser(argparse.ArgumentParser):
    """argparse with one escaped error line (``tokenlib proof verify: error: ... (see --help)``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{escape(self.prog)}: error: {escape(message)} (see --help)\n")


def _escape_char(ch: str) -> str:
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(value: object) -> str:
    """``str(value)`` with every character that is not printable shown as a visible escape.

    "Not printable" is :meth:`str.isprintable`: the C0 and C1 controls (ESC, BEL, CSI,
    OSC...), DEL, the format characters (bidi embeddings, overrides and isolates U+202A-E,
    U+2066-9, zero-width characters), line and paragraph separators, lone surrogates,
    private-use and unassigned code points, and every space but U+0020. Newlines become
    ``\\n``, so one value stays on one line. Printable text is returned unchanged.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape_char(ch) for ch in text)


def out(text: str = "") -> None:
    """Print ``text`` (already escaped by the caller, line by line) on stdout."""
    print(text)


def stderr(message: str) -> None:
    """One escaped ``tokenlib: ...`` line on stderr."""
    print(f"{PROG}: {escape(message)}", file=sys.stderr)


def emit_json(data: object) -> None:
    """``data`` as indented JSON on stdout (ASCII only: controls and non-ASCII escaped)."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str, ensure_ascii=True))


def iso_utc(value: object) -> str | None:
    """A NumericDate as ISO 8601 UTC (``2025-10-09T08:53:20Z``), or ``None``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
        return moment.isoformat().replace("+00:00", "Z")
    return None


def duration(seconds: float) -> str:
    """A span for people: ``3300`` -> ``55 min 0 s``, ``3600`` -> ``1 h 0 min``, ``45`` ->
    ``45 s``, two days and more in days; the sign is dropped (say "ago" or "in")."""
    span = abs(seconds)
    if span >= 2 * 86400:
        return f"{span / 86400:.1f} days"
    if span >= 3600:
        return f"{int(span // 3600)} h {int(span % 3600 // 60)} min"
    if span >= 60:
        return f"{int(span // 60)} min {int(span % 60)} s"
    return f"{int(span)} s" if span.is_integer() else f"{round(span, 3)} s"


def _seconds(value: float) -> str:
    """``3600`` -> ``3600 s (1 h 0 min)``: the exact value with its unit, and a readable
    span when it is a minute or longer."""
    text = f"{int(value)} s" if value.is_integer() else f"{round(value, 3)} s"
    return f"{text} ({duration(value)})" if abs(value) >= 60 else text


def explain_value(key: str, value: object) -> str:
    """One explain-view value for a terminal: dates as ISO 8601 UTC, durations with units."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and key in _DATE_KEYS:
        shown = iso_utc(value)
        if shown is not None:
            return f"{shown} ({value} epoch s)"
    if number and key in _SECONDS_KEYS:
        return _seconds(float(value))  # type: ignore[arg-type]
    return escape(value)


def explain_lines(exc: TokenError) -> list[str]:
    """``TokenError.explain()`` for a terminal: escaped, with dates and units."""
    lines = [
        f"{type(exc).__name__} [{escape(exc.error)}, HTTP {exc.status_code}]",
        f"  {escape(exc.description)}",
    ]
    width = max((len(escape(k)) for k in exc.details), default=0)
    lines.extend(
        f"  {escape(key).ljust(width)} : {explain_value(key, value)}"
        for key, value in exc.details.items()
    )
    return lines


def error_record(exc: TokenError) -> dict[str, object]:
    """The ``--json`` fields of a verification failure (a stable contract)."""
    return {
        "valid": False,
        "error": exc.error,
        "error_type": type(exc).__name__,
        "description": exc.description,
        "status": exc.status_code,
        "check": exc.check,
        "details": exc.details,
    }


def report_invalid(
    exc: TokenError, *, as_json: bool, explain: bool, extra: Mapping[str, Any] | None = None
) -> int:
    """A verification failure: the JSON record, or one stderr line plus the explain view."""
    if as_json:
        record = dict(extra or {})
        record.update(error_record(exc))
        record["verified"] = False
        emit_json(record)
    else:
        stderr(f"{exc.error}: {exc.description}")
        if explain:
            out("\n".join(explain_lines(exc)))
    return EXIT_INVALID


def table(rows: Iterable[tuple[str, object]], *, indent: str = "") -> list[str]:
    """``name : value`` lines, names padded, values escaped."""
    pairs = [(name, value) for name, value in rows if value is not None]
    width = max((len(name) for name, _ in pairs), default=0)
    return [f"{indent}{name.ljust(width)} : {escape(value)}" for name, value in pairs]


#: What a command module's ``register(sub, common)`` receives.
Subparsers = argparse._SubParsersAction  # argparse has no public name for it
