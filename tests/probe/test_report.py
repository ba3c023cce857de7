"""Outputs: the JSON contract, JUnit XML that a JUnit parser loads, HTML and terminal text
with every server-provided value escaped."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tokenlib.probe import (
    CheckResult,
    ProbeReport,
    check_by_id,
    render_html,
    render_json,
    render_table,
    write_report,
)

HOSTILE = 'DPoP error="x\x1b]52;c;ZXZpbA==\x07\x1b[2J", realm="<script>alert(1)</script>\u202e"'


def _report() -> ProbeReport:
    return ProbeReport(
        target="https://api.example.com/orders/42",
        method="GET",
        mode="rs",
        binding="dpop",
        started_at="2026-12-05T09:00:00+00:00",
        seconds=1.5,
        requests_sent=3,
        results=(
            CheckResult(check_by_id("dpop.valid"), "passed", "accepted", 200),
            CheckResult(
                check_by_id("dpop.bearer_downgrade"),
                "failed",
                "accepted (200): the server did not enforce this \x1b[31m",
                200,
                HOSTILE,
                "x\x1b]0;title\x07",
            ),
            CheckResult(check_by_id("dpop.jti_replayed"), "failed", "accepted", 200),
            CheckResult(check_by_id("mtls.valid"), "not_applicable", "the token is not mtls-bound"),
        ),
    )


def test_json_contract() -> None:
    data = json.loads(render_json(_report()))
    assert data["tokenlib_probe"] == 1
    assert data["summary"] == {"passed": 1, "failed": 2, "not_applicable": 1, "must_failed": 1}
    for item in data["checks"]:
        assert {"id", "title", "rfc", "severity", "status", "observed_status",
                "www_authenticate"} <= set(item)  # fmt: skip
        assert item["severity"] in ("must", "should", "info")
        assert item["status"] in ("passed", "failed", "not_applicable")
    assert data["checks"][1]["www_authenticate"] == HOSTILE  # the value, kept exact
    assert "\x1b" not in render_json(_report())  # but no raw escape reaches a terminal


def test_exit_code_follows_must_failures() -> None:
    report = _report()
    assert report.exit_code == 1
    assert [r.id for r in report.must_failures] == ["dpop.bearer_downgrade"]


def test_should_failures_alone_exit_zero() -> None:
    base = _report()
    report = ProbeReport(
        base.target, base.method, base.mode, base.binding, base.started_at, base.seconds,
        base.requests_sent, (base.results[0], base.results[2]),
    )  # fmt: skip
    assert report.failures
    assert report.exit_code == 0


def test_junit_loads_and_has_the_schema_shape(tmp_path: Path) -> None:
    path = tmp_path / "probe.xml"
    write_report(_report(), junit=path)
    root = ET.parse(path).getroot()  # noqa: S314 (our own output)
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    assert suite.get("tests") == "4"
    assert suite.get("failures") == "2"
    assert suite.get("skipped") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name", "").split(":")[0] for c in cases] == [
        "dpop.valid", "dpop.bearer_downgrade", "dpop.jti_replayed", "mtls.valid"
    ]  # fmt: skip
    assert all(c.get("classname", "").startswith("tokenlib.probe.") for c in cases)
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("type") == "must"
    assert "RFC 9449 §7.2" in (failure.text or "")
    assert cases[2].find("failure").get("type") == "should"  # type: ignore[union-attr]
    assert cases[3].find("skipped") is not None
    assert cases[0].find("failure") is None
    assert cases[0].find("skipped") is None
    raw = path.read_bytes()
    assert b"\x1b" not in raw
    assert b"\x07" not in raw


def test_table_escapes_control_characters() -> None:
    text = render_table(_report())
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\u202e" not in text
    assert "\\x1b]52" in text
    assert "FAIL dpop.bearer_downgrade (must)" in text
    assert "1 passed, 2 failed (1 must-level), 1 not applicable" in text


def test_html_escapes_everything(tmp_path: Path) -> None:
    page = render_html(_report())
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "\x1b" not in page
    assert "\u202e" not in page
    path = tmp_path / "probe.html"
    write_report(_report(), html=path)
    assert path.read_text(encoding="utf-8") == page
    assert page.startswith("<!DOCTYPE html>")


def test_unwritable_report_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_report(_report(), junit=tmp_path / "missing-dir" / "probe.xml")
    assert not list(tmp_path.iterdir())
