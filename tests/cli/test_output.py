"""``tokenlib.cli._output``: terminal escaping, JSON emission, the explain view, exit codes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenlib.cli import _output
from tokenlib.cli._output import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    emit_json,
    escape,
    explain_lines,
    explain_value,
    iso_utc,
    report_invalid,
)
from tokenlib.errors import InvalidDPoPProof, InvalidToken

# Sequences an attacker would put in a token value (ESC-based and 8-bit C1 forms).
ATTACKS = {
    "osc52-clipboard": "\x1b]52;c;Y3VybCBldmlsfHNo\x07",
    "osc0-title": "\x1b]0;signature OK\x1b\\",
    "csi-clear": "\x1b[2J\x1b[H",
    "csi-colour": "\x1b[32mvalid\x1b[0m",
    "c1-csi": "\x9b2J",
    "c1-osc": "\x9d0;title\x9c",
    "bidi-override": "live\u202eevil",
    "bidi-isolate": "\u2066abc\u2069",
    "zero-width": "a\u200bb",
    "line-separator": "a\u2028b",
    "bel-bs-del": "a\x07\x08\x7f",
    "cr-overwrite": "signature FAILED\rsignature OK    ",
    "newline": "line1\nverified: yes",
    "nul": "a\x00b",
    "lone-surrogate": "a\ud800b",
}


def _raw_controls(text: str) -> list[str]:
    """Characters that would act on a terminal (newline separates our own lines)."""
    return [ch for ch in text if ch != "\n" and not ch.isprintable()]


@pytest.mark.parametrize("value", ATTACKS.values(), ids=ATTACKS.keys())
def test_escape_leaves_nothing_a_terminal_acts_on(value: str) -> None:
    shown = escape(value)
    assert shown.isprintable()
    assert "\x1b" not in shown
    assert shown.encode("utf-8")  # a lone surrogate would raise UnicodeEncodeError on print


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"),
        ("\x9b2J", "\\x9b2J"),
        ("live\u202eevil", "live\\u202eevil"),
        ("a\nb\tc\rd", "a\\nb\\tc\\rd"),
        ("\U000e0041", "\\U000e0041"),  # a TAG character (Cf)
        ("café ü €", "café ü €"),  # printable non-ASCII is left alone
        ("GET", "GET"),
        (42, "42"),
    ],
)
def test_escape_forms(value: object, shown: str) -> None:
    assert escape(value) == shown


@given(st.text())
def test_escape_is_always_printable_and_identity_on_printable(text: str) -> None:
    shown = escape(text)
    assert shown.isprintable()
    if text.isprintable():
        assert shown == text


def test_emit_json_is_ascii_and_round_trips(capsys: pytest.CaptureFixture[str]) -> None:
    record = {name: value for name, value in ATTACKS.items() if name != "lone-surrogate"}
    emit_json(record)
    out = capsys.readouterr().out
    assert out.isascii()
    assert not _raw_controls(out)
    assert json.loads(out) == record


def test_emit_json_lone_surrogate_is_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    emit_json({"jti": "a\ud800b"})
    out = capsys.readouterr().out
    assert "\\ud800" in out
    assert json.loads(out) == {"jti": "a\ud800b"}


def test_iso_utc() -> None:
    assert iso_utc(1_760_000_000) == "2025-10-09T08:53:20Z"
    assert iso_utc(True) is None
    assert iso_utc("1760000000") is None
    assert iso_utc(1e300) is None


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("exp", 1_760_000_000, "2025-10-09T08:53:20Z (1760000000 epoch s)"),
        ("now", 1_760_003_600, "2025-10-09T09:53:20Z (1760003600 epoch s)"),
        ("server_time", 1_760_000_000.5, "2025-10-09T08:53:20.500000Z (1760000000.5 epoch s)"),
        ("leeway", 0, "0 s"),
        ("expired_for", 3600, "3600 s (1 h 0 min)"),
        ("offset", -300, "-300 s (5 min 0 s)"),
        ("expired_for", 172800.0, "172800 s (2.0 days)"),
        ("exp", "soon\x1b[2J", "soon\\x1b[2J"),  # a non-number is escaped, not formatted
        ("presented", "\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"),
    ],
)
def test_explain_value_dates_units_and_escapes(key: str, value: object, shown: str) -> None:
    assert explain_value(key, value) == shown


def test_explain_lines_escape_every_part() -> None:
    exc = InvalidDPoPProof(
        "the DPoP proof htm does not match\x1b[2J",
        details={"check": "htm", "expected": "GET", "presented": "\x1b]0;OK\x07", "\x9bk": 1},
    )
    lines = explain_lines(exc)
    assert lines[0] == "InvalidDPoPProof [invalid_dpop_proof, HTTP 401]"
    assert all(line.isprintable() for line in lines)
    assert any("\\x1b]0;OK\\x07" in line for line in lines)
    assert any("\\x9bk" in line for line in lines)


def test_report_invalid_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    exc = InvalidToken("bad\x1b[31m", details={"check": "typ", "presented": "\x1b]52;c;x\x07"})
    assert report_invalid(exc, as_json=False, explain=True) == EXIT_INVALID
    out, err = capsys.readouterr()
    assert not _raw_controls(out)
    assert not _raw_controls(err)
    assert err == "tokenlib: invalid_token: bad\\x1b[31m\n"
    assert report_invalid(exc, as_json=True, explain=True, extra={"x": 1}) == EXIT_INVALID
    record = json.loads(capsys.readouterr().out)
    assert record["details"]["presented"] == "\x1b]52;c;x\x07"
    assert record["verified"] is False
    assert record["x"] == 1


def test_stderr_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    _output.stderr("error: 'x\x1b]0;t\x07'")
    assert capsys.readouterr().err == "tokenlib: error: 'x\\x1b]0;t\\x07'\n"


def test_exit_codes_are_the_documented_ones() -> None:
    import tokenlib.cli

    assert (EXIT_OK, EXIT_INVALID, EXIT_USAGE) == (0, 1, 2)
    doc = tokenlib.cli.__doc__ or ""
    assert "0 success" in doc
    assert "1 a token or proof did not verify" in doc
    assert "2 a usage or input error" in doc
