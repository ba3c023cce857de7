"""Fixtures for the CLI tests: key files made with the CLI itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli._helpers import run
from tokenlib.cli import EXIT_OK


@pytest.fixture
def key_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    """An issuer key (with its JWKS file) and a client DPoP key, made with the CLI."""
    out = {}
    for name in ("issuer", "client"):
        code, _, _ = run(
            capsys, "keys", "generate", "--out", str(tmp_path / f"{name}.pem"),
            "--public-out", str(tmp_path / f"{name}.jwks"), "--jwks",
        )  # fmt: skip
        assert code == EXIT_OK
        out[name] = tmp_path / f"{name}.pem"
        out[f"{name}_jwks"] = tmp_path / f"{name}.jwks"
    return out
