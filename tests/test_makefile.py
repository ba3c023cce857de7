"""README's make targets: INVENTORY paths resolve from the caller's folder; make lab as root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on PATH")


def _dry_run(target: str, cwd: Path, *args: str) -> str:
    env = {**os.environ, "PWD": str(cwd)}
    out = subprocess.run(
        ["make", "-s", "-n", "-C", str(ROOT), target, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("default", '--inventory "default"'),
        ("my_flows.csv", '--inventory "{cwd}/my_flows.csv"'),
        ("sub/../inv/flows.csv", '--inventory "{cwd}/inv/flows.csv"'),
        ("/abs/flows.csv", '--inventory "/abs/flows.csv"'),
    ],
)
def test_report_inventory_resolves_against_the_callers_folder(
    tmp_path: Path, given: str, expected: str
) -> None:
    out = _dry_run("report", tmp_path, f"INVENTORY={given}")
    assert expected.format(cwd=tmp_path) in out


def test_lab_passes_lab_args(tmp_path: Path) -> None:
    out = _dry_run("lab", tmp_path, "LAB_ARGS=--port=9999")
    assert "jupyter lab notebooks --port=9999" in out
    if os.geteuid() == 0:
        assert "--allow-root" in _dry_run("lab", tmp_path)
