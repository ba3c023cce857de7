"""tokenlib.jwk: keys, public JWKs, RFC 7638 thumbprints and untrusted JWK parsing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from _vectors import case, cases
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tokenlib.errors import InvalidDPoPProof, InvalidToken, TokenError
from tokenlib.jwk import (
    ALGORITHMS,
    DEFAULT_ALGORITHMS,
    PrivateKey,
    alg_matches_key,
    b64url_decode,
    b64url_encode,
    default_alg_for_key,
    generate_key,
    jwk_thumbprint,
    load_private_key,
    load_public_jwk,
    public_jwk,
    write_private_key,
)

_RFC9449_JWK = case("rfc7638", "rfc9449-example-ec-p256")["jwk"]


# --- RFC 7638 known answers ----------------------------------------------------------


@pytest.mark.parametrize("vector", cases("rfc7638"))
def test_rfc7638_thumbprint_vectors(vector: dict[str, Any]) -> None:
    assert jwk_thumbprint(vector["jwk"]) == vector["thumbprint"]
    key, thumb = load_public_jwk(vector["jwk"])
    assert thumb == vector["thumbprint"]
    assert jwk_thumbprint(key) == vector["thumbprint"]


def test_rfc7638_canonical_json_hashes_to_the_thumbprint() -> None:
    # RFC 7638 §3.1 prints the canonical JSON; its SHA-256 is the published thumbprint.
    vector = case("rfc7638", "rfc7638-3.1-rsa")
    digest = hashlib.sha256(vector["canonical"].encode("utf-8")).digest()
    assert b64url_encode(digest) == vector["thumbprint"]


def test_thumbprint_ignores_optional_members_and_order() -> None:
    base = dict(_RFC9449_JWK)
    decorated = {"use": "sig", "kid": "k1", "alg": "ES256", **dict(reversed(base.items()))}
    assert jwk_thumbprint(decorated) == jwk_thumbprint(base)


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512", "EdDSA", "RS256"])
def test_thumbprint_of_key_equals_thumbprint_of_its_jwk(
    keys: dict[str, PrivateKey], alg: str
) -> None:
    key = keys[alg]
    jwk = public_jwk(key)
    assert jwk_thumbprint(key) == jwk_thumbprint(jwk) == jwk_thumbprint(key.public_key())
    members = {k: jwk[k] for k in sorted(jwk)}
    canonical = json.dumps(members, separators=(",", ":")).encode()
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=")
    assert jwk_thumbprint(key) == expected.decode()


# --- keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alg", "kind", "default"),
    [
        ("ES256", ec.EllipticCurvePrivateKey, "ES256"),
        ("ES384", ec.EllipticCurvePrivateKey, "ES384"),
        ("ES512", ec.EllipticCurvePrivateKey, "ES512"),
        ("EdDSA", ed25519.Ed25519PrivateKey, "EdDSA"),
        ("Ed25519", ed25519.Ed25519PrivateKey, "EdDSA"),
    ],
)
def test_generate_key(alg: str, kind: type, default: str) -> None:
    key = generate_key(alg)
    assert isinstance(key, kind)
    assert default_alg_for_key(key) == default
    assert alg_matches_key(alg, key)


def test_rsa_keys(rsa_key: PrivateKey) -> None:
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    assert rsa_key.key_size >= 2048
    assert default_alg_for_key(rsa_key) == "PS256"
    with pytest.raises(ValueError, match="2048"):
        generate_key("RS256", rsa_bits=1024)


@pytest.mark.parametrize("alg", ["HS256", "none", "ES256K", ""])
def test_generate_key_refuses_unsupported_algorithms(alg: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        generate_key(alg)


@pytest.mark.parametrize(
    ("alg", "key_alg", "fits"),
    [
        ("ES256", "ES256", True),
        ("ES256", "ES384", False),
        ("ES384", "ES256", False),
        ("ES512", "ES512", True),
        ("EdDSA", "EdDSA", True),
        ("Ed25519", "EdDSA", True),
        ("ES256", "EdDSA", False),
        ("RS256", "RS256", True),
        ("PS256", "RS256", True),
        ("RS256", "ES256", False),
        ("HS256", "ES256", False),
        ("none", "ES256", False),
    ],
)
def test_alg_matches_key(keys: dict[str, PrivateKey], alg: str, key_alg: str, fits: bool) -> None:
    assert alg_matches_key(alg, keys[key_alg]) is fits
    assert alg_matches_key(alg, keys[key_alg].public_key()) is fits


def test_algorithm_lists_never_contain_none_or_hmac() -> None:
    for name in (*ALGORITHMS, *DEFAULT_ALGORITHMS):
        assert name != "none"
        assert not name.startswith("HS")
    assert set(DEFAULT_ALGORITHMS) <= set(ALGORITHMS)


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA", "RS256"])
def test_public_jwk_has_no_private_members(keys: dict[str, PrivateKey], alg: str) -> None:
    jwk = public_jwk(keys[alg])
    assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(jwk)
    assert public_jwk(jwk) == jwk  # a mapping is validated and returned


def test_ec_coordinates_are_fixed_length() -> None:
    # RFC 7518 §6.2.1.2: x and y are the full coordinate length even with leading zeros.
    for _ in range(40):
        jwk = public_jwk(generate_key("ES256"))
        assert len(b64url_decode(jwk["x"])) == 32
        assert len(b64url_decode(jwk["y"])) == 32


# --- untrusted public JWKs: every rejection is a typed error with a code --------------


def _ec(**override: Any) -> dict[str, Any]:
    jwk = dict(_RFC9449_JWK)
    jwk.update(override)
    return {k: v for k, v in jwk.items() if v is not None}


def _rsa_jwk(bits: int) -> dict[str, str]:
    # A structurally valid RSA public key of ``bits`` bits (the modulus need not factor).
    n = (1 << (bits - 1)) | 1
    return {"kty": "RSA", "n": b64url_encode(n.to_bytes(bits // 8, "big")), "e": "AQAB"}


_NEGATIVE_JWKS = [
    pytest.param(_ec(d="jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"), "private", id="ec-d"),
    pytest.param({**_rsa_jwk(2048), "p": "AQAB"}, "private", id="rsa-p"),
    pytest.param({**_rsa_jwk(2048), "d": "AQAB"}, "private", id="rsa-d"),
    pytest.param({"kty": "oct", "k": "c2VjcmV0"}, "private", id="oct-k"),
    pytest.param({"kty": "oct"}, "usable", id="oct-no-k"),
    pytest.param(_ec(y="9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDE"), "usable", id="ec-off-curve"),
    pytest.param(_ec(x="l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBA"), "usable", id="ec-x-31-bytes"),
    pytest.param(
        _ec(x="AAl8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs"), "usable", id="ec-x-33-bytes"
    ),
    pytest.param(_ec(crv="P-384"), "usable", id="ec-wrong-curve-length"),
    pytest.param(_ec(crv="secp256k1"), "usable", id="ec-unknown-curve"),
    pytest.param(_ec(y=None), "usable", id="ec-missing-y"),
    pytest.param(_ec(x=12345), "usable", id="ec-x-not-string"),
    pytest.param(
        _ec(x="l8tFrhx+34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs"), "usable", id="ec-x-not-b64url"
    ),
    pytest.param(_ec(x="l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs="), "usable", id="ec-x-padded"),
    pytest.param(_rsa_jwk(1024), "usable", id="rsa-1024"),
    pytest.param(_rsa_jwk(2040), "usable", id="rsa-2040"),
    pytest.param({**_rsa_jwk(2048), "e": "Ag"}, "usable", id="rsa-even-exponent"),
    pytest.param({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}, "usable", id="okp-short"),
    pytest.param({"kty": "OKP", "crv": "X25519", "x": "A" * 43}, "usable", id="okp-x25519"),
    pytest.param({"kty": "XYZ"}, "usable", id="unknown-kty"),
    pytest.param({}, "usable", id="no-kty"),
    pytest.param(["kty", "EC"], "not a JSON object", id="not-an-object"),
    pytest.param("eyJrdHkiOiJFQyJ9", "not a JSON object", id="string"),
]


@pytest.mark.parametrize(("jwk", "reason"), _NEGATIVE_JWKS)
def test_load_public_jwk_rejects(jwk: object, reason: str) -> None:
    with pytest.raises(InvalidToken) as info:
        load_public_jwk(jwk)
    assert info.value.error == "invalid_token"
    assert info.value.check == "jwk"
    assert reason in info.value.description


@pytest.mark.parametrize(("jwk", "reason"), _NEGATIVE_JWKS[:3])
def test_load_public_jwk_uses_the_callers_error(jwk: object, reason: str) -> None:
    with pytest.raises(InvalidDPoPProof) as info:
        load_public_jwk(jwk, error=InvalidDPoPProof)
    assert info.value.error == "invalid_dpop_proof"
    assert isinstance(info.value, TokenError)


def test_private_members_are_never_echoed() -> None:
    secret = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
    with pytest.raises(InvalidToken) as info:
        load_public_jwk(_ec(d=secret))
    assert info.value.details["private_members"] == ["d"]
    assert secret not in info.value.explain()
    assert secret not in str(info.value)


@pytest.mark.parametrize("jwk", [_ec(d="AAAA"), {"kty": "oct", "k": "AAAA"}, _rsa_jwk(1024)])
def test_public_jwk_and_thumbprint_refuse_unusable_mappings(jwk: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"private|symmetric|bits"):
        public_jwk(jwk)


def test_load_public_jwk_caches_parsed_keys() -> None:
    first, thumb1 = load_public_jwk(dict(_RFC9449_JWK))
    second, thumb2 = load_public_jwk({**_RFC9449_JWK, "kid": "ignored"})
    assert first is second
    assert thumb1 == thumb2 == case("rfc7638", "rfc9449-example-ec-p256")["thumbprint"]


# --- base64url -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["QQ==", "a+b/", "abcde", "ab$c"])
def test_b64url_decode_is_strict(bad: str) -> None:
    with pytest.raises(ValueError, match=r"base64url|padding"):
        b64url_decode(bad)


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff\xfe", bytes(range(256))])
def test_b64url_round_trip(data: bytes) -> None:
    encoded = b64url_encode(data)
    assert "=" not in encoded
    assert b64url_decode(encoded) == data


# --- private key files: 0600, atomic ----------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_private_key_is_0600_and_loads_back(tmp_path: Path, es256_key: PrivateKey) -> None:
    target = tmp_path / "signing.pem"
    old_umask = os.umask(0o000)  # even a permissive umask must not widen the mode
    try:
        written = write_private_key(target, es256_key)
    finally:
        os.umask(old_umask)
    assert written == target
    assert _mode(target) == 0o600
    loaded = load_private_key(target)
    assert jwk_thumbprint(loaded) == jwk_thumbprint(es256_key)
    assert load_private_key(str(target)).public_key() == es256_key.public_key()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signing.pem"]


def test_write_private_key_replaces_a_world_readable_file(
    tmp_path: Path, es256_key: PrivateKey
) -> None:
    target = tmp_path / "k.pem"
    target.write_text("old")
    target.chmod(0o644)
    write_private_key(target, es256_key)
    assert _mode(target) == 0o600
    assert target.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_write_private_key_with_password(tmp_path: Path, ed25519_key: PrivateKey) -> None:
    target = write_private_key(tmp_path / "k.pem", ed25519_key, password=b"pw")
    assert b"ENCRYPTED" in target.read_bytes()
    assert jwk_thumbprint(load_private_key(target, password=b"pw")) == jwk_thumbprint(ed25519_key)


def test_write_private_key_is_atomic_on_failure(
    tmp_path: Path, es256_key: PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "k.pem"
    target.write_text("previous key")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_private_key(target, es256_key)
    assert target.read_text() == "previous key"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pem"]  # no temp file left


def test_load_private_key_refuses_short_rsa() -> None:
    from cryptography.hazmat.primitives import serialization

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test
    pem = weak.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="2048"):
        load_private_key(pem)


def test_check_rsa_key_bounds() -> None:
    """Issue 11: signing and verifying keys share one set of RSA bounds."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tokenlib.jwk import MAX_RSA_BITS, RSA_PUBLIC_EXPONENT, check_rsa_key_bounds

    assert (MAX_RSA_BITS, RSA_PUBLIC_EXPONENT) == (8192, 65537)
    check_rsa_key_bounds(generate_key("ES256"))  # not RSA: passes
    check_rsa_key_bounds(generate_key("RS256"))
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    with pytest.raises(ValueError, match="RFC 7518"):
        check_rsa_key_bounds(weak)
    with pytest.raises(ValueError, match="65537"):
        check_rsa_key_bounds(rsa.generate_private_key(public_exponent=3, key_size=2048))
    public = rsa.RSAPublicNumbers(65537, (1 << 8199) | 1).public_key()
    with pytest.raises(ValueError, match="8192"):
        check_rsa_key_bounds(public)
