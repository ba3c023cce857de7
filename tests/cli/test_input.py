"""``tokenlib.cli._input``: what a user hits when a file is not what the option wants."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.cli._helpers import HTU, run, self_signed_cert
from tokenlib.cli import EXIT_USAGE, CLIError
from tokenlib.cli._input import epoch_seconds, load_key, non_negative_seconds


def _public_pem() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


FILES = {
    "pem-certificate": (
        lambda: self_signed_cert().public_bytes(serialization.Encoding.PEM),
        "is a certificate, not a private key",
    ),
    "der-certificate": (
        lambda: self_signed_cert().public_bytes(serialization.Encoding.DER),
        "is a DER certificate, not a private key",
    ),
    "certificate-chain-after-text": (
        lambda: (
            b"subject=CN=client\n" + self_signed_cert().public_bytes(serialization.Encoding.PEM)
        ),
        "is a certificate, not a private key",
    ),
    "public-key": (_public_pem, "is a public key, not a private key"),
    "jwk": (lambda: b'{"kty": "EC", "crv": "P-256"}', "is JSON (a JWK?), not a private key"),
}


@pytest.mark.parametrize("case", FILES.values(), ids=FILES.keys())
@pytest.mark.parametrize("command", ["proof", "token"])
def test_wrong_kind_of_file_as_key_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: tuple[object, str], command: str
) -> None:
    """Issue 11: a certificate passed as --key gave cryptography's PEM framing message."""
    make, message = case
    path = tmp_path / "key.pem"
    path.write_bytes(make())  # type: ignore[operator]
    if command == "proof":
        argv = ["proof", "create", "--key", str(path), "--htm", "GET", "--htu", HTU]
    else:
        argv = ["token", "issue", "--key", str(path), "--iss", "https://as.example",
                "--sub", "s", "--client-id", "c", "--aud", "https://api.example"]  # fmt: skip
    code, out, err = run(capsys, *argv)
    assert code == EXIT_USAGE
    assert out == ""
    assert message in err
    assert "framing" not in err.lower()
    assert "deserialize" not in err.lower()
    assert len(err.strip().splitlines()) == 1


def test_broken_private_key_still_says_private_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.pem"
    path.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CLIError, match="not a usable PEM private key") as info:
        load_key(str(path))
    assert "AAAA" not in str(info.value)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e999", "soon", ""])
def test_epoch_seconds_refuses_non_finite(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        epoch_seconds(text)


def test_epoch_seconds_and_leeway_accept_ordinary_values() -> None:
    assert epoch_seconds("1760000000.5") == 1760000000.5
    assert non_negative_seconds("0") == 0
    assert non_negative_seconds("30") == 30


@pytest.mark.parametrize("text", ["-1", "1.5", "x"])
def test_leeway_refuses_negative_and_fractions(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        non_negative_seconds(text)
