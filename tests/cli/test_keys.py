"""``tokenlib keys generate``: key files 0600, only public material printed."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.cli._helpers import run, run_json, secret_fragments
from tokenlib.cli import EXIT_OK, EXIT_USAGE
from tokenlib.jwk import jwk_thumbprint, load_private_key


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "PS256"])
def test_keys_generate_writes_0600_and_prints_only_public(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], alg: str
) -> None:
    target = tmp_path / "k.pem"
    code, out, err = run(capsys, "keys", "generate", "--alg", alg, "--out", str(target))
    assert code == EXIT_OK
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    jwk = json.loads(out)
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
    key = load_private_key(target)
    assert jwk["kid"] == jwk_thumbprint(key)
    assert jwk["alg"] == alg
    for fragment in secret_fragments(target):
        assert fragment not in out
        assert fragment not in err
    assert not list(tmp_path.glob(".*.tmp"))


def test_keys_generate_json_and_public_jwk_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "k.pem"
    pub = tmp_path / "k.jwk"
    code, record = run_json(
        capsys, "keys", "generate", "--out", str(target), "--public-out", str(pub)
    )
    assert code == EXIT_OK
    assert record["mode"] == "0600"
    assert record["jkt"] == jwk_thumbprint(load_private_key(target))
    assert "private_key_pem" not in record
    assert json.loads(pub.read_text()) == record["public_jwk"]
    assert "PRIVATE" not in json.dumps(record)


def test_keys_generate_show_private_is_explicit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "k.pem"
    code, out, _ = run(capsys, "keys", "generate", "--out", str(target), "--show-private")
    assert code == EXIT_OK
    assert target.read_text().strip() in out


def test_keys_generate_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "k.pem"
    target.write_text("keep me")
    code, out, err = run(capsys, "keys", "generate", "--out", str(target))
    assert code == EXIT_USAGE
    assert target.read_text() == "keep me"
    assert "--force" in err
    assert len(err.strip().splitlines()) == 1
    assert out == ""
    code, _, _ = run(capsys, "keys", "generate", "--out", str(target), "--force")
    assert code == EXIT_OK
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
