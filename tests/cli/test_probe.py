"""``tokenlib probe``: wired to ``tokenlib.probe._cli.register``, imported only when asked."""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from typing import Any

import pytest

from tests.cli._helpers import run
from tokenlib.cli import EXIT_OK, EXIT_USAGE, main


def _fake_probe(monkeypatch: pytest.MonkeyPatch, register: Any) -> None:
    fake = types.ModuleType("tokenlib.probe._cli")
    fake.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tokenlib.probe._cli", fake)


def test_probe_is_wired_to_the_probe_module(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[argparse.Namespace] = []

    def register(sub: Any) -> None:
        p = sub.add_parser("probe")
        p.add_argument("url")
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
        p.set_defaults(func=lambda args: seen.append(args) or 1)

    _fake_probe(monkeypatch, register)
    assert main(["probe", "https://127.0.0.1:8443/", "--json"]) == 1
    assert seen[0].url == "https://127.0.0.1:8443/"
    assert seen[0].json is True
    assert main(["--json", "probe", "https://127.0.0.1:8443/"]) == 1
    assert seen[1].json is True


@pytest.mark.parametrize("argv", [["probe"], ["probe", "https://x.example/", "--json"]])
def test_probe_unavailable_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tokenlib.probe._cli", None)  # import -> ImportError
    code, out, err = run(capsys, *argv)
    assert code == EXIT_USAGE
    assert out == ""
    assert err == (
        "tokenlib: error: the probe feature is unavailable in this installation: "
        "tokenlib.probe is not part of it\n"
    )


def test_probe_missing_dependency_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tokenlib.cli.probe as wiring

    def fail(name: str) -> Any:
        raise ModuleNotFoundError("No module named 'httpx'", name="httpx")

    monkeypatch.setattr(wiring, "_import", fail)
    code, _, err = run(capsys, "probe", "x")
    assert code == EXIT_USAGE
    assert "unavailable in this installation: the probe needs httpx" in err


def test_probe_is_listed_and_not_imported_by_other_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == EXIT_OK
    assert "probe" in out
    script = (
        "import sys\n"
        "from tokenlib.cli import main\n"
        "main(['thumbprint', '/nonexistent'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('tokenlib.probe')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_top_level_json_reaches_a_command_whose_json_defaults_false(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []

    def register(sub: Any) -> None:
        p = sub.add_parser("probe")
        p.add_argument("--json", action="store_true")  # default False, not SUPPRESS
        p.set_defaults(func=lambda args: seen.append(args.json) or 0)

    _fake_probe(monkeypatch, register)
    assert main(["--json", "probe"]) == 0
    assert main(["probe"]) == 0
    assert main(["probe", "--json"]) == 0
    assert seen == [True, False, True]
