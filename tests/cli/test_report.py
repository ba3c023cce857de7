"""``tokenlib report``: every argument goes to ``tokenlib.analysis.report.main``."""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import pytest

from tokenlib.cli import main


def test_report_delegates_all_arguments(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tokenlib.analysis

    seen: list[tuple[list[str], str | None]] = []

    def fake_main(argv: list[str], *, prog: str | None = None, echo: Any = None) -> int:
        seen.append((argv, prog))
        return 3

    fake = types.ModuleType("tokenlib.analysis.report")
    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tokenlib.analysis.report", fake)
    monkeypatch.setattr(tokenlib.analysis, "report", fake, raising=False)
    assert main(["report", "--inventory", "x.csv", "--help"]) == 3
    assert seen == [(["--inventory", "x.csv", "--help"], "tokenlib report")]


def test_report_help_names_tokenlib_report(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 11: `tokenlib report --help` showed `python -m tokenlib.analysis.report`."""
    pytest.importorskip("pandas")
    assert main(["report", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tokenlib report ")
    assert "python -m" not in out


def test_report_usage_error_exits_2_with_its_name(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pandas")
    assert main(["report", "--jobs", "many"]) == 2
    err = capsys.readouterr().err
    assert "tokenlib report: error:" in err


@pytest.mark.parametrize(("code", "ok"), [(0, True), (1, False)])
@pytest.mark.parametrize("where", ["after", "before"])
def test_report_json_record(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    ok: bool,
    where: str,
) -> None:
    import tokenlib.analysis

    seen: list[list[str]] = []

    def fake_main(argv: list[str], *, prog: str | None = None, echo: Any = None) -> int:
        seen.append(argv)
        echo("report: reports/index.html (7 notebooks)\x1b]0;x\x07")
        return code

    fake = types.ModuleType("tokenlib.analysis.report")
    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tokenlib.analysis.report", fake)
    monkeypatch.setattr(tokenlib.analysis, "report", fake, raising=False)
    argv = ["report", "--quick", "--json"] if where == "after" else ["--json", "report", "--quick"]
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert json.loads(out) == {
        "exit_code": code,
        "ok": ok,
        "messages": ["report: reports/index.html (7 notebooks)\x1b]0;x\x07"],
    }
    assert err == ""
    assert seen == [["--quick", "--no-progress"]]


def test_report_messages_are_escaped_on_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tokenlib.analysis

    def fake_main(argv: list[str], *, prog: str | None = None, echo: Any = None) -> int:
        echo("error: invalid inventory 'x\x1b[2J.csv'")
        return 2

    fake = types.ModuleType("tokenlib.analysis.report")
    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tokenlib.analysis.report", fake)
    monkeypatch.setattr(tokenlib.analysis, "report", fake, raising=False)
    assert main(["report", "--inventory", "x"]) == 2
    assert capsys.readouterr().err == "error: invalid inventory 'x\\x1b[2J.csv'\n"


def test_report_json_bad_input_leaves_stdout_empty(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tokenlib.analysis

    def fake_main(argv: list[str], *, prog: str | None = None, echo: Any = None) -> int:
        echo("error: invalid inventory 'x.csv': row 2, column kind: 'robot' is not allowed")
        return 2

    fake = types.ModuleType("tokenlib.analysis.report")
    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tokenlib.analysis.report", fake)
    monkeypatch.setattr(tokenlib.analysis, "report", fake, raising=False)
    assert main(["report", "--inventory", "x.csv", "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: invalid inventory 'x.csv'")
    assert len(err.strip().splitlines()) == 1
