"""``tokenlib thumbprint``: RFC 7638 thumbprints of keys, RFC 8705 x5t#S256 of certificates."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.cli._helpers import VECTORS, run, run_json, self_signed_cert
from tokenlib.cli import EXIT_OK, EXIT_USAGE
from tokenlib.jwk import jwk_thumbprint, load_private_key


@pytest.mark.parametrize(
    "case", json.loads((VECTORS / "rfc7638.json").read_text())["cases"], ids=lambda c: c["id"]
)
def test_thumbprint_of_rfc_jwk_vectors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: dict[str, Any]
) -> None:
    path = tmp_path / "key.jwk"
    path.write_text(json.dumps(case["jwk"]))
    code, record = run_json(capsys, "thumbprint", str(path))
    assert code == EXIT_OK
    assert record == {
        "kind": "jwk",
        "thumbprint": case["thumbprint"],
        "cnf": {"jkt": case["thumbprint"]},
    }


@pytest.mark.parametrize("encoding", [serialization.Encoding.PEM, serialization.Encoding.DER])
def test_thumbprint_of_certificate_is_x5t_s256(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], encoding: serialization.Encoding
) -> None:
    cert = self_signed_cert()
    path = tmp_path / "client.crt"
    path.write_bytes(cert.public_bytes(encoding))
    der = cert.public_bytes(serialization.Encoding.DER)
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    code, out, _ = run(capsys, "thumbprint", str(path))
    assert code == EXIT_OK
    assert out.strip() == f"x5t#S256: {expected}"


def test_thumbprint_of_pem_key_matches_public_jwk(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from_pem = run(capsys, "thumbprint", "-q", str(key_files["client"]))[1].strip()
    from_jwks = run(capsys, "thumbprint", "-q", str(key_files["client_jwks"]))[1].strip()
    assert from_pem == from_jwks == jwk_thumbprint(load_private_key(key_files["client"]))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a key", "neither a JWK"),
        (b'{"kty": "oct", "k": "c2VjcmV0"}', "not a usable JWK"),
        (b"[1, 2]", "not a JSON object"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "certificate"),
    ],
)
def test_thumbprint_bad_input_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    code, out, err = run(capsys, "thumbprint", str(path))
    assert code == EXIT_USAGE
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "thumbprint", str(tmp_path / "nope"))
    assert code == EXIT_USAGE
    assert "cannot read" in err
