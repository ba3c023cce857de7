"""Helpers for the CLI tests: drive ``main(argv)`` and capture what it wrote."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any, Final

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tokenlib.cli import EXIT_OK, main
from tokenlib.jwk import load_private_key

VECTORS: Final = Path(__file__).resolve().parent.parent / "vectors"
NOW: Final = 1_760_000_000
ISS: Final = "https://as.example"
AUD: Final = "https://api.example"
HTU: Final = "https://api.example/orders"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code, out, _ = run(capsys, *argv, "--json")
    return code, json.loads(out)


def secret_fragments(key_path: Path) -> list[str]:
    """Pieces of a private key that must never show up in output."""
    pem = key_path.read_text()
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    key = load_private_key(key_path)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return [body[20:60], base64.urlsafe_b64encode(der).decode()[20:60], "PRIVATE KEY"]


def issue(capsys: pytest.CaptureFixture[str], keys: dict[str, Path], *extra: str) -> str:
    """A token from ``tokenlib token issue`` signed with the issuer key, at ``NOW``."""
    code, out, _ = run(
        capsys, "token", "issue", "--key", str(keys["issuer"]), "--iss", ISS, "--sub", "alice",
        "--client-id", "app", "--aud", AUD, "--scope", "orders:read", "--now", str(NOW), *extra,
    )  # fmt: skip
    assert code == EXIT_OK
    return out.strip()


def create(capsys: pytest.CaptureFixture[str], keys: dict[str, Path], *extra: str) -> str:
    """A proof from ``tokenlib proof create`` with the client key for ``GET HTU`` at ``NOW``."""
    code, out, _ = run(
        capsys, "proof", "create", "--key", str(keys["client"]), "--htm", "GET", "--htu", HTU,
        "--now", str(NOW), *extra,
    )  # fmt: skip
    assert code == EXIT_OK
    return out.strip()


def self_signed_cert() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")])
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
