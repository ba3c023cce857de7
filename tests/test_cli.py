"""The ``tokenlib`` CLI driven through ``main(argv)``: outputs, exit codes, key file modes."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.server
import io
import json
import stat
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tokenlib.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, main
from tokenlib.jwk import jwk_thumbprint, load_private_key

VECTORS = Path(__file__).parent / "vectors"
NOW = 1_760_000_000
ISS = "https://as.example"
AUD = "https://api.example"
HTU = "https://api.example/orders"


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


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    """An issuer key (with its JWKS file) and a client DPoP key, made with the CLI."""
    out = {}
    for name in ("issuer", "client"):
        code, _, _ = run(
            capsys,
            "keys",
            "generate",
            "--out",
            str(tmp_path / f"{name}.pem"),
            "--public-out",
            str(tmp_path / f"{name}.jwks"),
            "--jwks",
        )
        assert code == EXIT_OK
        out[name] = tmp_path / f"{name}.pem"
        out[f"{name}_jwks"] = tmp_path / f"{name}.jwks"
    return out


def issue(capsys: pytest.CaptureFixture[str], keys: dict[str, Path], *extra: str) -> str:
    code, out, _ = run(
        capsys,
        "token",
        "issue",
        "--key",
        str(keys["issuer"]),
        "--iss",
        ISS,
        "--sub",
        "alice",
        "--client-id",
        "app",
        "--aud",
        AUD,
        "--scope",
        "orders:read",
        "--now",
        str(NOW),
        *extra,
    )
    assert code == EXIT_OK
    return out.strip()


# -- keys generate ---------------------------------------------------------------------------


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


# -- thumbprint ------------------------------------------------------------------------------


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


def _self_signed_cert() -> x509.Certificate:
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


@pytest.mark.parametrize("encoding", [serialization.Encoding.PEM, serialization.Encoding.DER])
def test_thumbprint_of_certificate_is_x5t_s256(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], encoding: serialization.Encoding
) -> None:
    cert = _self_signed_cert()
    path = tmp_path / "client.crt"
    path.write_bytes(cert.public_bytes(encoding))
    der = cert.public_bytes(serialization.Encoding.DER)
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    code, out, _ = run(capsys, "thumbprint", str(path))
    assert code == EXIT_OK
    assert out.strip() == f"x5t#S256: {expected}"


def test_thumbprint_of_pem_key_matches_public_jwk(
    keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from_pem = run(capsys, "thumbprint", "-q", str(keys["client"]))[1].strip()
    from_jwks = run(capsys, "thumbprint", "-q", str(keys["client_jwks"]))[1].strip()
    assert from_pem == from_jwks == jwk_thumbprint(load_private_key(keys["client"]))


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


# -- token issue / inspect -------------------------------------------------------------------


def test_token_issue_dpop_bound_and_inspect(
    keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    token = issue(capsys, keys, "--dpop-key", str(keys["client"]))
    jkt = jwk_thumbprint(load_private_key(keys["client"]))
    code, record = run_json(capsys, "token", "inspect", token)
    assert code == EXIT_OK
    assert record["binding"] == "dpop"
    assert record["cnf"] == {"jkt": jkt}
    assert record["claims"]["sub"] == "alice"
    assert record["header"]["typ"] == "at+jwt"
    assert record["verified"] is None
    for fragment in secret_fragments(keys["issuer"]) + secret_fragments(keys["client"]):
        assert fragment not in token


def test_token_issue_json_and_cert_binding(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cert = _self_signed_cert()
    path = tmp_path / "c.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    code, record = run_json(
        capsys, "token", "issue", "--key", str(keys["issuer"]), "--iss", ISS, "--sub", "s",
        "--client-id", "c", "--aud", AUD, "--cert", str(path),
    )  # fmt: skip
    assert code == EXIT_OK
    assert record["binding"] == "mtls"
    assert record["token_type"] == "Bearer"
    code, inspected = run_json(capsys, "token", "inspect", record["access_token"])
    assert inspected["binding"] == "mtls"
    assert inspected["cnf"]["x5t#S256"] == record["cnf"]["x5t#S256"]


def test_token_inspect_verifies_against_jwks_file(
    keys: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = issue(capsys, keys)
    monkeypatch.setattr(sys, "stdin", io.StringIO(token + "\n"))
    code, out, err = run(
        capsys, "token", "inspect", "-", "--jwks", str(keys["issuer_jwks"]),
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
    keys: dict[str, Path], capsys: pytest.CaptureFixture[str], args: tuple[str, ...], check: str
) -> None:
    token = issue(capsys, keys)
    now = () if "--now" in args else ("--now", str(NOW))
    code, record = run_json(
        capsys, "token", "inspect", token, "--jwks", str(keys["issuer_jwks"]), *now, *args
    )
    assert code == EXIT_INVALID
    assert record["error"] == "invalid_token"
    assert record["check"] == check
    assert record["verified"] is False
    code, out, err = run(
        capsys, "token", "inspect", token, "--jwks", str(keys["issuer_jwks"]), *now, *args
    )
    assert code == EXIT_INVALID
    assert err.startswith("tokenlib: invalid_token: ")
    assert len(err.strip().splitlines()) == 1
    assert "InvalidToken [invalid_token, HTTP 401]" in out


def test_token_inspect_wrong_key_fails(
    keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    token = issue(capsys, keys)
    code, record = run_json(
        capsys, "token", "inspect", token, "--jwks", str(keys["client_jwks"]),
        "--issuer", ISS, "--audience", AUD, "--now", str(NOW),
    )  # fmt: skip
    assert code == EXIT_INVALID
    assert record["error"] == "invalid_token"


def test_token_inspect_garbage_is_invalid(capsys: pytest.CaptureFixture[str]) -> None:
    code, record = run_json(capsys, "token", "inspect", "not.a.jwt")
    assert code == EXIT_INVALID
    assert record["error"] == "invalid_token"


def test_token_inspect_jwks_needs_issuer_and_audience(
    keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    token = issue(capsys, keys)
    code, _, err = run(capsys, "token", "inspect", token, "--jwks", str(keys["issuer_jwks"]))
    assert code == EXIT_USAGE
    assert "--issuer" in err


@pytest.fixture
def jwks_server(keys: dict[str, Path]) -> Iterator[str]:
    body = keys["issuer_jwks"].read_bytes()

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
    keys: dict[str, Path], jwks_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    token = issue(capsys, keys)
    code, record = run_json(
        capsys, "token", "inspect", token, "--jwks", jwks_server,
        "--issuer", ISS, "--audience", AUD, "--now", str(NOW),
    )  # fmt: skip
    assert code == EXIT_OK
    assert record["verified"] is True


@pytest.mark.parametrize("url", ["http://example.com/jwks", "ftp://127.0.0.1/jwks"])
def test_token_inspect_refuses_plain_http_off_loopback(
    keys: dict[str, Path], capsys: pytest.CaptureFixture[str], url: str
) -> None:
    token = issue(capsys, keys)
    code, _, err = run(
        capsys, "token", "inspect", token, "--jwks", url, "--issuer", ISS, "--audience", AUD
    )
    assert code == EXIT_USAGE
    assert "refusing" in err or "neither" in err or "cannot read" in err


# -- DPoP proofs -----------------------------------------------------------------------------


def create(capsys: pytest.CaptureFixture[str], keys: dict[str, Path], *extra: str) -> str:
    code, out, _ = run(
        capsys, "proof", "create", "--key", str(keys["client"]), "--htm", "GET", "--htu", HTU,
        "--now", str(NOW), *extra,
    )  # fmt: skip
    assert code == EXIT_OK
    return out.strip()


def test_proof_roundtrip(keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    proof = create(capsys, keys, "--access-token", "tok", "--nonce", "n-1")
    code, record = run_json(
        capsys, "proof", "verify", proof, "--htm", "GET", "--htu", HTU + "?q=1",
        "--access-token", "tok", "--nonce", "n-1", "--now", str(NOW + 5),
    )  # fmt: skip
    assert code == EXIT_OK
    assert record["valid"] is True
    assert record["jkt"] == jwk_thumbprint(load_private_key(keys["client"]))
    assert record["htu"] == HTU
    assert record["nonce"] == "n-1"
    for fragment in secret_fragments(keys["client"]):
        assert fragment not in proof


def test_proof_create_json_shows_public_header_only(
    keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, record = run_json(
        capsys, "proof", "create", "--key", str(keys["client"]), "--htm", "POST", "--htu", HTU
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
    keys: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    error: str,
    check: str,
) -> None:
    proof = create(capsys, keys)
    now = () if "--now" in args else ("--now", str(NOW))
    code, record = run_json(capsys, "proof", "verify", proof, *now, *args)
    assert code == EXIT_INVALID
    assert record["valid"] is False
    assert record["error"] == error
    assert record["check"] == check


def test_proof_verify_explain_and_one_line_error(
    keys: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proof = create(capsys, keys)
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
    keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    proof = create(capsys, keys)
    code, out, _ = run(
        capsys, "proof", "verify", proof, "--htm", "PUT", "--htu", HTU, "--now", str(NOW)
    )
    assert code == EXIT_INVALID
    assert out == ""


# -- usage, help, delegation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["keys"],
        ["keys", "generate"],
        ["keys", "generate", "--out", "x", "--alg", "HS256"],
        ["proof", "verify", "p"],
        ["token", "issue", "--key", "k"],
        ["token", "issue", "--key", "k", "--iss", "i", "--sub", "s", "--client-id", "c",
         "--aud", "a", "--jkt", "x", "--dpop-key", "y"],
    ],
)  # fmt: skip
def test_usage_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == EXIT_USAGE
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "error" in err


@pytest.mark.parametrize(
    "argv", [["--help"], ["keys", "generate", "--help"], ["proof", "verify", "--help"]]
)
def test_help_exits_0(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, _ = run(capsys, *argv)
    assert code == EXIT_OK
    assert "usage: tokenlib" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from tokenlib import __version__

    code, out, _ = run(capsys, "--version")
    assert code == EXIT_OK
    assert __version__ in out


def test_unreadable_signing_key_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    code, _, err = run(capsys, "proof", "create", "--key", str(bad), "--htm", "GET", "--htu", HTU)
    assert code == EXIT_USAGE
    assert "not a usable PEM private key" in err
    assert "AAAA" not in err


def test_report_delegates_all_arguments(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tokenlib.analysis

    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 3

    fake = types.ModuleType("tokenlib.analysis.report")
    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tokenlib.analysis.report", fake)
    monkeypatch.setattr(tokenlib.analysis, "report", fake, raising=False)
    assert main(["report", "--inventory", "x.csv", "--help"]) == 3
    assert seen == [["--inventory", "x.csv", "--help"]]


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


def test_lab_run_reports_mismatches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pd = pytest.importorskip("pandas")
    import tokenlib.lab.runner as runner

    frame = pd.DataFrame(
        [{"binding": "dpop", "proxy_mode": "terminate", "attack": "baseline", "accepted": True}]
    )
    calls: list[dict[str, Any]] = []

    def fake_run_lab(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return frame

    monkeypatch.setattr(runner, "run_lab", fake_run_lab)
    monkeypatch.setattr(runner, "check_outcomes", lambda df: [])
    code, record = run_json(capsys, "lab", "run", "--out", str(tmp_path / "r.csv"), "--no-redis")
    assert code == EXIT_OK
    assert calls == [{"out": str(tmp_path / "r.csv"), "seed": 0, "redis": False}]
    assert record["results"][0]["binding"] == "dpop"
    monkeypatch.setattr(runner, "check_outcomes", lambda df: ["dpop/terminate/baseline"])
    code, _, err = run(capsys, "lab", "run")
    assert code == EXIT_INVALID
    assert "unexpected outcome: dpop/terminate/baseline" in err


def test_cli_imports_only_the_core() -> None:
    """`tokenlib keys generate` must work with the core dependencies alone."""
    import subprocess

    code = (
        "import sys, tokenlib.cli; "
        "heavy = {'pandas', 'numpy', 'httpx', 'uvicorn', 'starlette', 'redis', 'matplotlib'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


@pytest.fixture
def https_jwks(keys: dict[str, Path], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The issuer's JWKS served over HTTPS on loopback with a throwaway lab CA."""
    pytest.importorskip("uvicorn")
    from tokenlib.lab._serve import ServedApp
    from tokenlib.lab.pki import create_pki

    body = keys["issuer_jwks"].read_bytes()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    pki = create_pki(tmp_path, clients=())
    with ServedApp(app, ssl_context=pki.server_context(client_auth="none"), lifespan="off") as s:
        yield f"{s.url}/jwks", pki.ca_cert_file


def test_token_inspect_fetches_jwks_over_https(
    keys: dict[str, Path], https_jwks: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, ca = https_jwks
    token = issue(capsys, keys)
    args = ("token", "inspect", token, "--jwks", url, "--issuer", ISS, "--audience", AUD)
    code, record = run_json(capsys, *args, "--now", str(NOW), "--cafile", str(ca))
    assert code == EXIT_OK
    assert record["verified"] is True
    code, _, err = run(capsys, *args)  # the lab CA is not in the system trust store
    assert code == EXIT_USAGE
    assert "cannot fetch the JWKS" in err
    assert len(err.strip().splitlines()) == 1
