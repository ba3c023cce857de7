"""``tokenlib inventory``: wired to ``tokenlib.analysis._inventory_cli.register``."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from tokenlib.cli import main


def test_inventory_registers_h3_commands(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tokenlib.analysis

    def register(sub: Any) -> None:
        p = sub.add_parser("inventory")
        p.add_argument("action")
        p.set_defaults(func=lambda args: 7 if args.action == "summary" else 0)

    fake = types.ModuleType("tokenlib.analysis._inventory_cli")
    fake.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tokenlib.analysis._inventory_cli", fake)
    monkeypatch.setattr(tokenlib.analysis, "_inventory_cli", fake, raising=False)
    assert main(["inventory", "summary"]) == 7


def test_inventory_without_the_analysis_extra_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tokenlib.analysis._inventory_cli", None)
    assert main(["inventory", "summary"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "the inventory commands need the 'analysis' extra" in err


def test_inventory_is_listed_without_importing_pandas(capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess

    script = (
        "import sys\nfrom tokenlib.cli import main\nmain(['--help'])\n"
        "print('pandas' in sys.modules, 'tokenlib.analysis' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert "inventory" in result.stdout
    assert result.stdout.strip().endswith("False False")


def test_real_inventory_commands_are_registered(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pandas")
    assert main(["inventory", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: tokenlib inventory" in out
    for action in ("generate", "validate", "summary"):
        assert action in out
