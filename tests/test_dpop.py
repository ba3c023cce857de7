"""tokenlib.dpop: proof creation, every RFC 9449 §4.3 / §11.1 check, KATs from RFC 9449."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from _vectors import case, cases
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tokenlib import dpop
from tokenlib.dpop import DPoPPolicy, access_token_hash, create_proof, verify_proof
from tokenlib.errors import (
    InvalidDPoPProof,
    InvalidRequest,
    ReplayDetected,
    TokenError,
    UseDPoPNonce,
)
from tokenlib.jwk import PrivateKey, generate_key, jwk_thumbprint, public_jwk
from tokenlib.nonce import NonceManager
from tokenlib.replay import MemoryReplayCache

NOW = 1_700_000_000
HTU = "https://rs.example.com/api/items"
TOKEN = "eyJ.an-access-token.sig"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def enc(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def raw_sign(key: PrivateKey, data: bytes) -> bytes:
    """JWS signature computed with cryptography directly (independent of tokenlib)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        digest = {32: hashes.SHA256(), 48: hashes.SHA384(), 66: hashes.SHA512()}[size]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def forge(
    key: PrivateKey,
    *,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    drop_header: tuple[str, ...] = (),
    drop: tuple[str, ...] = (),
    raw_header: str | None = None,
    raw_claims: str | None = None,
) -> str:
    """A proof with arbitrary header/claims, signed with ``key``."""
    head: dict[str, Any] = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(key)}
    head.update(header or {})
    body: dict[str, Any] = {"jti": "jti-0123456789ab", "htm": "GET", "htu": HTU, "iat": NOW}
    body.update(claims or {})
    for name in drop_header:
        head.pop(name)
    for name in drop:
        body.pop(name)
    h = b64(raw_header.encode()) if raw_header is not None else enc(head)
    c = b64(raw_claims.encode()) if raw_claims is not None else enc(body)
    signing_input = f"{h}.{c}"
    return f"{signing_input}.{b64(raw_sign(key, signing_input.encode()))}"


@pytest.fixture
def key(es256_key: PrivateKey) -> PrivateKey:
    return es256_key


@pytest.fixture
def proof(key: PrivateKey) -> str:
    return create_proof(key, "GET", HTU, access_token=TOKEN, now=NOW)


# ----------------------------------------------------------------------------- KATs


@pytest.mark.parametrize("vector", cases("rfc9449", kind="proof"))
def test_rfc9449_example_proofs_verify_at_their_iat(vector: dict[str, Any]) -> None:
    assert vector["proof"] == "".join(line.rstrip("\\").strip() for line in vector["lines"])
    result = verify_proof(
        vector["proof"],
        htm=vector["htm"],
        htu=vector["htu"],
        access_token=vector["access_token"],
        now=vector["iat"],
        replay_cache=MemoryReplayCache(),
        expected_jkt=vector["jkt"],
    )
    assert result.jkt == vector["jkt"]
    assert result.jti == vector["jti"]
    assert result.iat == vector["iat"]
    assert result.ath == vector["ath"]
    assert dict(result.header["jwk"]) == vector["jwk"]


@pytest.mark.parametrize("vector", cases("rfc9449", kind="proof"))
def test_rfc9449_example_proofs_are_stale_today(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(vector["proof"], htm=vector["htm"], htu=vector["htu"], now=NOW)
    assert info.value.check == "iat"


def test_rfc9449_example_proof_with_tampered_payload_fails() -> None:
    vector = case("rfc9449", "fig2-token-request-proof")
    head, _, sig = vector["proof"].split(".")
    claims = {"jti": vector["jti"], "htm": "POST", "htu": vector["htu"], "iat": vector["iat"] + 1}
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(
            f"{head}.{enc(claims)}.{sig}", htm="POST", htu=vector["htu"], now=vector["iat"]
        )
    assert info.value.check == "signature"


def test_rfc9449_jkt_and_ath_vectors() -> None:
    jkt = case("rfc9449", "jkt-example-key")
    assert jwk_thumbprint(jkt["jwk"]) == jkt["jkt"]
    ath = case("rfc9449", "ath-example-token")
    assert access_token_hash(ath["access_token"]) == ath["ath"]


def test_access_token_hash_rejects_non_ascii() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        access_token_hash("tökén")
    with pytest.raises(TypeError):
        access_token_hash(b"token")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ creation


def _decode(proof: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = proof.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(head))),
        json.loads(base64.urlsafe_b64decode(pad(body))),
    )


def test_create_proof_header_and_claims(key: PrivateKey) -> None:
    proof = create_proof(
        key,
        "POST",
        "https://RS.example.com:443/a/b?q=1#frag",
        access_token=TOKEN,
        nonce="n-1",
        now=NOW,
    )
    header, claims = _decode(proof)
    assert header == {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(key)}
    assert "d" not in header["jwk"]
    assert claims["htm"] == "POST"
    assert claims["htu"] == "https://rs.example.com/a/b"
    assert claims["iat"] == NOW
    assert claims["ath"] == b64(hashlib.sha256(TOKEN.encode()).digest())
    assert claims["nonce"] == "n-1"
    assert len(base64.urlsafe_b64decode(claims["jti"] + "==")) * 8 >= 96


def test_create_proof_omits_optional_claims(key: PrivateKey) -> None:
    _, claims = _decode(create_proof(key, "GET", HTU, now=NOW))
    assert set(claims) == {"jti", "htm", "htu", "iat"}


def test_create_proof_jti_is_unique(key: PrivateKey) -> None:
    jtis = {_decode(create_proof(key, "GET", HTU, now=NOW))[1]["jti"] for _ in range(200)}
    assert len(jtis) == 200


def test_create_proof_explicit_jti_and_datetime_now(key: PrivateKey) -> None:
    from datetime import UTC, datetime

    proof = create_proof(key, "GET", HTU, jti="abc", now=datetime.fromtimestamp(NOW, tz=UTC))
    assert _decode(proof)[1] == {"jti": "abc", "htm": "GET", "htu": HTU, "iat": NOW}


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"])
def test_round_trip_every_algorithm(keys: dict[str, PrivateKey], alg: str) -> None:
    signing_key = keys[alg]
    proof = create_proof(signing_key, "GET", HTU, alg=alg, now=NOW)
    assert _decode(proof)[0]["alg"] == alg
    result = verify_proof(proof, htm="GET", htu=HTU, now=NOW, policy=DPoPPolicy.lenient())
    assert result.alg == alg
    assert result.jkt == jwk_thumbprint(signing_key)


@pytest.mark.parametrize("alg", ["EdDSA", "Ed25519"])
def test_ed25519_accepts_both_identifiers(ed25519_key: PrivateKey, alg: str) -> None:
    proof = create_proof(ed25519_key, "GET", HTU, alg=alg, now=NOW)
    assert _decode(proof)[0]["alg"] == alg
    assert verify_proof(proof, htm="GET", htu=HTU, now=NOW).alg == alg


def test_default_alg_for_ed25519_is_eddsa(ed25519_key: PrivateKey) -> None:
    assert _decode(create_proof(ed25519_key, "GET", HTU, now=NOW))[0]["alg"] == "EdDSA"


def test_header_cache_distinguishes_alg_and_keys(ed25519_key: PrivateKey) -> None:
    a = _decode(create_proof(ed25519_key, "GET", HTU, alg="Ed25519", now=NOW))[0]
    b = _decode(create_proof(ed25519_key, "GET", HTU, alg="EdDSA", now=NOW))[0]
    assert (a["alg"], b["alg"]) == ("Ed25519", "EdDSA")
    for _ in range(3):
        fresh = generate_key("ES256")
        header = _decode(create_proof(fresh, "GET", HTU, now=NOW))[0]
        assert header["jwk"] == public_jwk(fresh)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"htm": "GE T"}, "htm"),
        ({"htm": ""}, "htm"),
        ({"htu": "/relative"}, "absolute"),
        ({"htu": "ftp://x/"}, "scheme"),
        ({"nonce": ""}, "nonce"),
        ({"nonce": 'a"b'}, "nonce"),
        ({"jti": ""}, "jti"),
        ({"alg": "RS256"}, "algorithm"),
        ({"alg": "HS256"}, "algorithm"),
        ({"alg": "ES384"}, "algorithm"),
        ({"access_token": "tökén"}, "ASCII"),
    ],
)
def test_create_proof_rejects_bad_arguments(
    key: PrivateKey, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"htm": "GET", "htu": HTU, "now": NOW}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        create_proof(key, args.pop("htm"), args.pop("htu"), **args)


# ------------------------------------------------------------------- verification


def test_verify_returns_verified_content(key: PrivateKey, proof: str) -> None:
    result = verify_proof(proof, htm="GET", htu=HTU, access_token=TOKEN, now=NOW + 5)
    assert result.jkt == jwk_thumbprint(key)
    assert result.htm == "GET"
    assert result.htu == HTU
    assert result.iat == NOW
    assert result.ath == access_token_hash(TOKEN)
    assert result.nonce is None
    assert result.claims["jti"] == result.jti
    assert result.header["typ"] == "dpop+jwt"
    assert result.alg == "ES256"
    assert result.replay_expires_at == NOW + 300 + 60
    with pytest.raises(TypeError):
        result.header["typ"] = "x"  # type: ignore[index]


def test_extra_claims_and_header_members_are_ignored(key: PrivateKey) -> None:
    proof = forge(key, header={"kid": "k1", "x-extra": 1}, claims={"extra": {"a": [1]}})
    assert verify_proof(proof, htm="GET", htu=HTU, now=NOW).claims["extra"] == {"a": [1]}


def _other_key() -> PrivateKey:
    return generate_key("ES256")


def _hs256(key: PrivateKey) -> str:
    head = enc({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}})
    body = enc({"jti": "j", "htm": "GET", "htu": HTU, "iat": NOW})
    return f"{head}.{body}.{b64(b'x' * 32)}"


def _swap_signature(key: PrivateKey) -> str:
    good = forge(key)
    other = forge(_other_key())
    return good.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1]


def _non_canonical_signature(key: PrivateKey) -> str:
    good = forge(key)
    head, body, sig = good.split(".")
    last = sig[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(last)
    # ES256 signature: 86 characters, the last one carries 4 unused bits.
    twin = alphabet[index | 1] if index % 2 == 0 else alphabet[index & ~1]
    return f"{head}.{body}.{sig[:-1]}{twin}"


def _private_jwk(key: PrivateKey) -> dict[str, Any]:
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    jwk: dict[str, Any] = dict(public_jwk(key))
    jwk["d"] = b64(key.private_numbers().private_value.to_bytes(32, "big"))
    return jwk


Builder = Callable[[PrivateKey], Any]

# (id, proof builder, verify overrides, error class, error code, check)
NEGATIVE: list[tuple[str, Builder, dict[str, Any], type[TokenError], str, str]] = [
    (
        "not-a-string",
        lambda k: b"abc.def.ghi",
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "syntax",
    ),
    (
        "oversized-before-parse",
        lambda k: "!" * 9000,
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "size",
    ),
    ("two-segments", lambda k: "abc.def", {}, InvalidDPoPProof, "invalid_dpop_proof", "syntax"),
    (
        "four-segments",
        lambda k: forge(k) + ".x",
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "syntax",
    ),
    (
        "two-proofs-joined",
        lambda k: forge(k) + "," + forge(k),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "syntax",
    ),
    (
        "junk-character",
        lambda k: forge(k)[:-3] + "!" + forge(k)[-3:],
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "syntax",
    ),
    ("padding", lambda k: forge(k) + "==", {}, InvalidDPoPProof, "invalid_dpop_proof", "syntax"),
    ("whitespace", lambda k: " " + forge(k), {}, InvalidDPoPProof, "invalid_dpop_proof", "syntax"),
    (
        "non-canonical-base64",
        _non_canonical_signature,
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "syntax",
    ),
    (
        "header-not-json",
        lambda k: forge(k, raw_header="{not json"),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "syntax",
    ),
    (
        "payload-array",
        lambda k: forge(k, raw_claims="[1,2]"),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "syntax",
    ),
    (
        "payload-nan",
        lambda k: forge(k, raw_claims='{"jti":"j","htm":"GET","htu":"' + HTU + '","iat":NaN}'),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "syntax",
    ),
    (
        "duplicate-claim",
        lambda k: forge(
            k, raw_claims=f'{{"jti":"j","htm":"GET","htm":"POST","htu":"{HTU}","iat":{NOW}}}'
        ),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "syntax",
    ),
    (
        "duplicate-header-member",
        lambda k: forge(
            k,
            raw_header='{"typ":"dpop+jwt","alg":"ES256","alg":"none","jwk":'
            + json.dumps(public_jwk(k))
            + "}",
        ),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "syntax",
    ),
    (
        "crit",
        lambda k: forge(k, header={"crit": ["exp"], "exp": 1}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "crit",
    ),
    (
        "b64-false",
        lambda k: forge(k, header={"b64": False}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "crit",
    ),
    (
        "missing-typ",
        lambda k: forge(k, drop_header=("typ",)),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "claims",
    ),
    (
        "missing-alg",
        lambda k: forge(k, drop_header=("alg",)),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "claims",
    ),
    (
        "missing-jwk",
        lambda k: forge(k, drop_header=("jwk",)),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "claims",
    ),
    (
        "typ-jwt",
        lambda k: forge(k, header={"typ": "JWT"}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "typ",
    ),
    (
        "typ-at+jwt",
        lambda k: forge(k, header={"typ": "at+jwt"}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "typ",
    ),
    (
        "typ-not-string",
        lambda k: forge(k, header={"typ": 1}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "typ",
    ),
    (
        "alg-none",
        lambda k: forge(k, header={"alg": "none"}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "alg",
    ),
    ("alg-hs256", _hs256, {}, InvalidDPoPProof, "invalid_dpop_proof", "alg"),
    (
        "alg-not-string",
        lambda k: forge(k, header={"alg": ["ES256"]}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "alg",
    ),
    (
        "alg-not-in-policy",
        lambda k: forge(k),
        {"policy": DPoPPolicy(algorithms=("EdDSA",))},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "alg",
    ),
    (
        "alg-does-not-fit-key",
        lambda k: forge(k, header={"alg": "ES384"}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "alg",
    ),
    (
        "jwk-private-key",
        lambda k: forge(k, header={"jwk": _private_jwk(k)}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "jwk",
    ),
    (
        "jwk-oct",
        lambda k: forge(k, header={"jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "jwk",
    ),
    (
        "jwk-not-object",
        lambda k: forge(k, header={"jwk": "key"}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "jwk",
    ),
    (
        "jwk-off-curve",
        lambda k: forge(k, header={"jwk": {**public_jwk(k), "y": public_jwk(_other_key())["y"]}}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "jwk",
    ),
    (
        "missing-jti",
        lambda k: forge(k, drop=("jti",)),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "claims",
    ),
    (
        "missing-htm",
        lambda k: forge(k, drop=("htm",)),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "claims",
    ),
    (
        "missing-htu",
        lambda k: forge(k, drop=("htu",)),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "claims",
    ),
    (
        "missing-iat",
        lambda k: forge(k, drop=("iat",)),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "claims",
    ),
    (
        "jti-not-string",
        lambda k: forge(k, claims={"jti": 12345}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "jti",
    ),
    (
        "jti-empty",
        lambda k: forge(k, claims={"jti": ""}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "jti",
    ),
    (
        "jti-too-long",
        lambda k: forge(k, claims={"jti": "j" * 257}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "jti",
    ),
    (
        "htm-not-string",
        lambda k: forge(k, claims={"htm": ["GET"]}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "htm",
    ),
    (
        "htu-not-string",
        lambda k: forge(k, claims={"htu": None}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "htu",
    ),
    (
        "iat-string",
        lambda k: forge(k, claims={"iat": str(NOW)}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "iat",
    ),
    (
        "iat-bool",
        lambda k: forge(k, claims={"iat": True}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "iat",
    ),
    (
        "signature-other-key",
        _swap_signature,
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "signature",
    ),
    (
        "signature-truncated",
        lambda k: forge(k)[:-2],
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "signature",
    ),
    (
        "signature-tampered-claims",
        lambda k: (
            forge(k).split(".")[0]
            + "."
            + enc({"jti": "x", "htm": "GET", "htu": HTU, "iat": NOW})
            + "."
            + forge(k).split(".")[2]
        ),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "signature",
    ),
    (
        "htm-lower-case",
        lambda k: forge(k, claims={"htm": "get"}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "htm",
    ),
    (
        "htm-other-method",
        lambda k: forge(k, claims={"htm": "POST"}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "htm",
    ),
    (
        "htu-other-path",
        lambda k: forge(k, claims={"htu": "https://rs.example.com/api/other"}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "htu",
    ),
    (
        "htu-trailing-slash",
        lambda k: forge(k, claims={"htu": HTU + "/"}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "htu",
    ),
    (
        "htu-path-case",
        lambda k: forge(k, claims={"htu": "https://rs.example.com/API/items"}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "htu",
    ),
    (
        "htu-other-host",
        lambda k: forge(k, claims={"htu": "https://evil.example.com/api/items"}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "htu",
    ),
    (
        "htu-http-scheme",
        lambda k: forge(k, claims={"htu": "http://rs.example.com/api/items"}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "htu",
    ),
    (
        "htu-other-port",
        lambda k: forge(k, claims={"htu": "https://rs.example.com:8443/api/items"}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "htu",
    ),
    (
        "htu-userinfo",
        lambda k: forge(k, claims={"htu": "https://rs.example.com@evil.example/api/items"}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "htu",
    ),
    (
        "htu-relative",
        lambda k: forge(k, claims={"htu": "/api/items"}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "htu",
    ),
    (
        "nonce-missing",
        lambda k: forge(k),
        {"nonce": "server-nonce"},
        UseDPoPNonce,
        "use_dpop_nonce",
        "nonce",
    ),
    (
        "nonce-wrong",
        lambda k: forge(k, claims={"nonce": "old-nonce"}),
        {"nonce": "server-nonce"},
        UseDPoPNonce,
        "use_dpop_nonce",
        "nonce",
    ),
    (
        "nonce-not-string",
        lambda k: forge(k, claims={"nonce": 7}),
        {"nonce": "server-nonce"},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "nonce",
    ),
    (
        "iat-too-old",
        lambda k: forge(k, claims={"iat": NOW - 301}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "iat",
    ),
    (
        "iat-too-new",
        lambda k: forge(k, claims={"iat": NOW + 61}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "iat",
    ),
    (
        "iat-one-hour-ago",
        lambda k: forge(k, claims={"iat": NOW - 3600}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "iat",
    ),
    (
        "iat-one-hour-ahead",
        lambda k: forge(k, claims={"iat": NOW + 3600}),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "iat",
    ),
    (
        "ath-missing",
        lambda k: forge(k),
        {"access_token": TOKEN},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "ath",
    ),
    (
        "ath-wrong",
        lambda k: forge(k, claims={"ath": access_token_hash("other")}),
        {"access_token": TOKEN},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "ath",
    ),
    (
        "ath-hex-not-b64url",
        lambda k: forge(k, claims={"ath": hashlib.sha256(TOKEN.encode()).hexdigest()}),
        {"access_token": TOKEN},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "ath",
    ),
    (
        "ath-not-string",
        lambda k: forge(k, claims={"ath": 1}),
        {"access_token": TOKEN},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "ath",
    ),
    (
        "jkt-mismatch",
        lambda k: forge(k),
        {"expected_jkt": jwk_thumbprint(generate_key("ES256"))},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "jkt",
    ),
]


@pytest.mark.parametrize(
    ("builder", "overrides", "cls", "code", "check"),
    [pytest.param(*row[1:], id=row[0]) for row in NEGATIVE],
)
def test_negative_table(
    key: PrivateKey,
    builder: Builder,
    overrides: dict[str, Any],
    cls: type[TokenError],
    code: str,
    check: str,
) -> None:
    cache = MemoryReplayCache()
    args: dict[str, Any] = {"htm": "GET", "htu": HTU, "now": NOW, "replay_cache": cache}
    args.update(overrides)
    with pytest.raises(cls) as info:
        verify_proof(builder(key), **args)
    err = info.value
    assert err.error == code
    assert err.check == check
    assert err.status_code == (401 if code != "invalid_request" else 400)
    assert len(cache) == 0  # nothing is recorded for a rejected proof


def test_replayed_proof_is_detected(key: PrivateKey, proof: str) -> None:
    cache = MemoryReplayCache()
    verify_proof(proof, htm="GET", htu=HTU, access_token=TOKEN, now=NOW, replay_cache=cache)
    with pytest.raises(ReplayDetected) as info:
        verify_proof(proof, htm="GET", htu=HTU, access_token=TOKEN, now=NOW + 1, replay_cache=cache)
    assert info.value.error == "invalid_dpop_proof"
    assert info.value.check == "replay"
    assert info.value.details["jkt"] == jwk_thumbprint(key)


def test_same_jti_from_another_key_is_not_a_replay(key: PrivateKey) -> None:
    cache = MemoryReplayCache()
    other = generate_key("ES256")
    for signer in (key, other):
        proof = create_proof(signer, "GET", HTU, jti="shared-jti", now=NOW)
        verify_proof(proof, htm="GET", htu=HTU, now=NOW, replay_cache=cache)


def test_same_jti_same_key_other_uri_is_a_replay(key: PrivateKey) -> None:
    cache = MemoryReplayCache()
    verify_proof(
        create_proof(key, "GET", HTU, jti="j1", now=NOW),
        htm="GET",
        htu=HTU,
        now=NOW,
        replay_cache=cache,
    )
    other = "https://rs.example.com/other"
    with pytest.raises(ReplayDetected):
        verify_proof(
            create_proof(key, "GET", other, jti="j1", now=NOW),
            htm="GET",
            htu=other,
            now=NOW,
            replay_cache=cache,
        )


@pytest.mark.parametrize(
    ("iat", "first_seen", "replayed_at"),
    [
        pytest.param(NOW, NOW, NOW + 300, id="replay-at-last-acceptable-second"),
        pytest.param(NOW + 60, NOW, NOW + 60 + 300, id="future-iat-replayed-at-window-end"),
        pytest.param(NOW - 300, NOW, NOW, id="oldest-acceptable-proof"),
    ],
)
def test_replay_entry_covers_the_whole_window_including_skew(
    key: PrivateKey, iat: int, first_seen: int, replayed_at: int
) -> None:
    """Keycloak #43505: the TTL must cover every moment the proof is still acceptable."""
    cache = MemoryReplayCache()
    proof = create_proof(key, "GET", HTU, now=iat)
    result = verify_proof(proof, htm="GET", htu=HTU, now=first_seen, replay_cache=cache)
    assert result.replay_expires_at == iat + 300 + 60
    with pytest.raises(ReplayDetected):
        verify_proof(proof, htm="GET", htu=HTU, now=replayed_at, replay_cache=cache)


def test_failed_checks_do_not_burn_the_jti(key: PrivateKey, proof: str) -> None:
    cache = MemoryReplayCache()
    with pytest.raises(InvalidDPoPProof):
        verify_proof(proof, htm="POST", htu=HTU, access_token=TOKEN, now=NOW, replay_cache=cache)
    with pytest.raises(InvalidDPoPProof):
        verify_proof(proof, htm="GET", htu=HTU, access_token="other", now=NOW, replay_cache=cache)
    verify_proof(proof, htm="GET", htu=HTU, access_token=TOKEN, now=NOW, replay_cache=cache)


def test_without_cache_a_proof_verifies_twice(proof: str) -> None:
    for _ in range(2):
        verify_proof(proof, htm="GET", htu=HTU, access_token=TOKEN, now=NOW)


@pytest.mark.parametrize(
    ("claimed", "request_url"),
    [
        ("HTTPS://RS.EXAMPLE.COM/api/items", HTU),
        ("https://rs.example.com:443/api/items", HTU),
        ("https://rs.example.com/api/items?a=1#frag", HTU),
        (HTU, "https://rs.example.com/api/items?page=2"),
        ("https://rs.example.com/api/%69tems", HTU),
        ("https://rs.example.com/api/./x/../items", HTU),
        ("https://rs.example.com/%7Euser", "https://rs.example.com/~user"),
        ("https://rs.example.com", "https://rs.example.com/"),
        ("http://rs.example.com:80/a", "http://rs.example.com/a"),
        ("https://XN--bcher-kva.example/a", "https://xn--bcher-kva.example/a"),
        ("https://[::1]:8443/a", "https://[0:0:0:0:0:0:0:1]:8443/a"),
    ],
)
def test_htu_normalisation_accepts_equivalent_uris(
    key: PrivateKey, claimed: str, request_url: str
) -> None:
    proof = forge(key, claims={"htu": claimed})
    assert verify_proof(proof, htm="GET", htu=request_url, now=NOW).htu == claimed


def test_htu_error_explains_both_sides(key: PrivateKey) -> None:
    proof = forge(key, claims={"htu": "HTTPS://RS.example.com:443/api/other?x"})
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(proof, htm="GET", htu=HTU + "?q", now=NOW)
    assert info.value.details["expected"] == HTU
    assert info.value.details["presented"] == "https://rs.example.com/api/other"


def test_malformed_request_url_is_an_invalid_request(key: PrivateKey) -> None:
    with pytest.raises(InvalidRequest) as info:
        verify_proof(forge(key), htm="GET", htu="https://rs.example.com/a b", now=NOW)
    assert info.value.check == "htu"
    assert info.value.status_code == 400


def test_iat_error_explains_the_window(key: PrivateKey) -> None:
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(forge(key, claims={"iat": NOW - 400}), htm="GET", htu=HTU, now=NOW)
    details = info.value.details
    assert details["iat"] == NOW - 400
    assert details["server_time"] == NOW
    assert details["offset"] == -400
    assert details["window"] == "[-300s, +60s]"
    assert "too old" in info.value.description


def test_ath_error_explains_computed_and_claimed(key: PrivateKey) -> None:
    wrong = access_token_hash("other")
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(
            forge(key, claims={"ath": wrong}), htm="GET", htu=HTU, access_token=TOKEN, now=NOW
        )
    assert info.value.details["expected"] == access_token_hash(TOKEN)
    assert info.value.details["presented"] == wrong


def test_expected_jkt_match(key: PrivateKey, proof: str) -> None:
    result = verify_proof(proof, htm="GET", htu=HTU, now=NOW, expected_jkt=jwk_thumbprint(key))
    assert result.jkt == jwk_thumbprint(key)


def test_errors_never_contain_the_proof_or_token(key: PrivateKey) -> None:
    secret_token = "SECRET-TOKEN-VALUE-123"
    proof = forge(key, claims={"ath": access_token_hash("x")})
    with pytest.raises(TokenError) as info:
        verify_proof(proof, htm="GET", htu=HTU, access_token=secret_token, now=NOW)
    text = " ".join(
        [str(info.value), repr(info.value), info.value.explain(), info.value.www_authenticate]
    )
    assert secret_token not in text
    assert proof not in text
    assert proof.split(".")[2] not in text


# ------------------------------------------------------------------------- nonces


def test_expected_nonce_string(key: PrivateKey) -> None:
    proof = forge(key, claims={"nonce": "server-nonce"})
    assert (
        verify_proof(proof, htm="GET", htu=HTU, nonce="server-nonce", now=NOW).nonce
        == "server-nonce"
    )


def test_nonce_claim_is_ignored_when_not_required(key: PrivateKey) -> None:
    proof = forge(key, claims={"nonce": "whatever"})
    assert verify_proof(proof, htm="GET", htu=HTU, now=NOW).nonce == "whatever"


def test_nonce_manager_as_validator(key: PrivateKey) -> None:
    manager = NonceManager(b"k" * 32, lifetime=120, step=60)
    fresh = manager.issue(now=NOW)
    verify_proof(forge(key, claims={"nonce": fresh}), htm="GET", htu=HTU, nonce=manager, now=NOW)
    stale = manager.issue(now=NOW - 3600)
    with pytest.raises(UseDPoPNonce):
        verify_proof(
            forge(key, claims={"nonce": stale}), htm="GET", htu=HTU, nonce=manager, now=NOW
        )


def test_iat_relaxed_by_server_nonce_only_when_configured(key: PrivateKey) -> None:
    manager = NonceManager(b"k" * 32, lifetime=120, step=60)
    proof = forge(key, claims={"nonce": manager.issue(now=NOW), "iat": NOW - 3000})
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(proof, htm="GET", htu=HTU, nonce=manager, now=NOW)
    assert info.value.check == "iat"
    relaxed = DPoPPolicy(iat_past_with_nonce=3600)
    cache = MemoryReplayCache()
    result = verify_proof(
        proof, htm="GET", htu=HTU, nonce=manager, now=NOW, policy=relaxed, replay_cache=cache
    )
    assert result.replay_expires_at == NOW - 3000 + 3600 + 60
    with pytest.raises(ReplayDetected):
        verify_proof(
            proof,
            htm="GET",
            htu=HTU,
            nonce=manager,
            now=NOW + 60,
            policy=relaxed,
            replay_cache=cache,
        )
    # A static expected nonce is not a server-managed timestamp: no relaxation.
    static = forge(key, claims={"nonce": "abc", "iat": NOW - 3000})
    with pytest.raises(InvalidDPoPProof):
        verify_proof(static, htm="GET", htu=HTU, nonce="abc", now=NOW, policy=relaxed)


# ------------------------------------------------------------------------- policy


def test_policy_presets() -> None:
    rfc = DPoPPolicy.rfc()
    assert (rfc.iat_past, rfc.iat_future, rfc.window) == (300, 60, 360)
    fapi = DPoPPolicy.fapi2()
    assert (fapi.iat_past, fapi.iat_future) == (60, 10)
    assert set(fapi.algorithms) == {"PS256", "ES256", "EdDSA", "Ed25519"}
    lenient = DPoPPolicy.lenient()
    assert lenient.iat_past > rfc.iat_past
    assert lenient.iat_future > rfc.iat_future


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(10, True), (11, False), (60, False), (61, False), (-60, True), (-61, False)],
)
def test_fapi2_iat_window(key: PrivateKey, offset: int, accepted: bool) -> None:
    """FAPI 2.0: accept up to 10 s in the future, never beyond 60 s."""
    proof = forge(key, claims={"iat": NOW + offset})
    if accepted:
        verify_proof(proof, htm="GET", htu=HTU, now=NOW, policy=DPoPPolicy.fapi2())
    else:
        with pytest.raises(InvalidDPoPProof) as info:
            verify_proof(proof, htm="GET", htu=HTU, now=NOW, policy=DPoPPolicy.fapi2())
        assert info.value.check == "iat"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"algorithms": ("none",)},
        {"algorithms": ("HS256",)},
        {"algorithms": ()},
        {"algorithms": ["ES256"]},
        {"iat_past": -1},
        {"iat_future": 1.5},
        {"max_proof_length": True},
        {"iat_past_with_nonce": -5},
    ],
)
def test_policy_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - message differs per field
        DPoPPolicy(**kwargs)


def test_max_proof_length_policy(key: PrivateKey, proof: str) -> None:
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(proof, htm="GET", htu=HTU, now=NOW, policy=DPoPPolicy(max_proof_length=100))
    assert info.value.details["limit"] == 100


def test_cached_header_still_obeys_each_policy(key: PrivateKey) -> None:
    proof = forge(key)
    verify_proof(proof, htm="GET", htu=HTU, now=NOW)  # header now cached
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(proof, htm="GET", htu=HTU, now=NOW, policy=DPoPPolicy(algorithms=("PS256",)))
    assert info.value.check == "alg"


def test_replay_key_is_fixed_length_hex() -> None:
    key_a = dpop.replay_key("jkt", "x" * 10_000)
    assert len(key_a) == 64
    int(key_a, 16)
    assert key_a != dpop.replay_key("jkt", "y")
    assert key_a != dpop.replay_key("other", "x" * 10_000)


@pytest.mark.parametrize("iat", [10**400, -(10**400), 2**62, -(2**62)])
def test_iat_beyond_any_clock_is_refused_cleanly(key: PrivateKey, iat: int) -> None:
    with pytest.raises(InvalidDPoPProof) as info:  # never an OverflowError
        verify_proof(forge(key, claims={"iat": iat}), htm="GET", htu=HTU, now=NOW)
    assert info.value.check == "iat"


@pytest.mark.parametrize("iat", [NOW, NOW - 0.5, float(NOW)])
def test_iat_fast_and_slow_paths_accept_alike(key: PrivateKey, iat: float) -> None:
    result = verify_proof(forge(key, claims={"iat": iat}), htm="GET", htu=HTU, now=NOW)
    assert result.iat == iat
    assert result.replay_expires_at == float(iat) + 360


@pytest.mark.parametrize("now", [float("nan"), float("inf")])
def test_non_finite_clock_is_refused(proof: str, now: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        verify_proof(proof, htm="GET", htu=HTU, now=now)


@pytest.mark.parametrize(
    "token", ["a", "eyJ.an-access-token.sig", "x" * 2000, "+/=", "\x7f", "A" * 1 + "~"]
)
def test_access_token_hash_is_base64url_sha256(token: str) -> None:
    expected = b64(hashlib.sha256(token.encode("ascii")).digest())
    assert access_token_hash(token) == expected
    assert len(expected) == 43


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        (lambda p: p.replace(".", "..", 1), "syntax"),  # an empty segment
        (lambda p: p + ".", "syntax"),
        (lambda p: "." + p, "syntax"),
        (lambda p: p[:-2] + "+" + p[-1], "syntax"),  # standard-alphabet character
        (lambda p: p[:-2] + "é" + p[-1], "syntax"),
        (lambda p: p[:10] + " " + p[11:], "syntax"),
    ],
)
def test_compact_syntax_without_the_regex(
    proof: str, mutate: Callable[[str], str], check: str
) -> None:
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(mutate(proof), htm="GET", htu=HTU, now=NOW)
    assert info.value.check == check


def test_proof_result_is_a_normal_frozen_dataclass(proof: str) -> None:
    result = verify_proof(proof, htm="GET", htu=HTU, access_token=TOKEN, now=NOW)
    rebuilt = dpop.DPoPProof(
        **{f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    )
    assert rebuilt == result
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.jti = "other"  # type: ignore[misc]


# ------------------------------------------------------ issue 11: conformance negatives


def test_rfc7519_s4_1_4_exp_in_the_past_is_refused(key: PrivateKey) -> None:
    """RFC 7519 §4.1.4: a JWT must not be accepted on or after its exp (oauth4webapi and
    the OpenID conformance suite refuse such proofs)."""
    for exp in (NOW - 1, NOW):
        with pytest.raises(InvalidDPoPProof) as info:
            verify_proof(forge(key, claims={"exp": exp}), htm="GET", htu=HTU, now=NOW)
        assert info.value.check == "exp"
        assert info.value.details["rfc_section"] == "RFC 7519 §4.1.4"
    assert verify_proof(forge(key, claims={"exp": NOW + 1}), htm="GET", htu=HTU, now=NOW)


def test_rfc7519_s4_1_5_nbf_in_the_future_is_refused(key: PrivateKey) -> None:
    """RFC 7519 §4.1.5: not before nbf; the policy's iat_future skew applies as for iat."""
    policy = DPoPPolicy()
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(
            forge(key, claims={"nbf": NOW + policy.iat_future + 1}), htm="GET", htu=HTU, now=NOW
        )
    assert info.value.check == "nbf"
    assert info.value.details["rfc_section"] == "RFC 7519 §4.1.5"
    ok = forge(key, claims={"nbf": NOW + policy.iat_future})
    assert verify_proof(ok, htm="GET", htu=HTU, now=NOW)


@pytest.mark.parametrize("claim", ["exp", "nbf"])
@pytest.mark.parametrize("value", [str(NOW + 60), None, True, [NOW], {"t": NOW}, 10**400])
def test_rfc7519_s4_1_4_and_s4_1_5_exp_nbf_must_be_numbers(
    key: PrivateKey, claim: str, value: Any
) -> None:
    raw = None
    if value == 10**400:  # a JSON number no float can hold
        raw = json.dumps({"jti": "j", "htm": "GET", "htu": HTU, "iat": NOW})[:-1] + (
            f', "{claim}": {value}}}'
        )
    proof = forge(key, claims={claim: value}, raw_claims=raw)
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(proof, htm="GET", htu=HTU, now=NOW)
    assert info.value.check == claim
    assert "not a number" in info.value.description


@pytest.mark.parametrize("value", [None, 5, "", "has space", 'quote"', ["n"], True])
def test_rfc9449_s8_1_nonce_must_be_nqchar_string_null_included(
    key: PrivateKey, value: Any
) -> None:
    """RFC 9449 §8.1: nonce = 1*NQCHAR. ``"nonce": null`` used to count as "no nonce"
    while ``"nonce": 5`` was refused; both are refused now, required or not."""
    proof = forge(key, claims={"nonce": value})
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(proof, htm="GET", htu=HTU, now=NOW)
    assert info.value.check == "nonce"
    with pytest.raises(InvalidDPoPProof):
        verify_proof(proof, htm="GET", htu=HTU, nonce="n", now=NOW)


def test_rfc9449_s4_2_null_ath_is_refused(key: PrivateKey) -> None:
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(forge(key, claims={"ath": None}), htm="GET", htu=HTU, now=NOW)
    assert info.value.check == "ath"


def test_rfc7518_s3_3_create_proof_refuses_short_rsa_keys() -> None:
    """RFC 7518 §3.3/§3.5: RSA keys of 2048 bits or more; create_proof used to sign with
    a 1024-bit key when alg was left to its default."""
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    for alg in (None, "PS256", "RS256"):
        with pytest.raises(ValueError, match="2048"):
            create_proof(weak, "GET", HTU, now=NOW, alg=alg)


def test_create_proof_refuses_rsa_keys_verifiers_refuse() -> None:
    e3 = rsa.generate_private_key(public_exponent=3, key_size=2048)
    with pytest.raises(ValueError, match="65537"):
        create_proof(e3, "GET", HTU, now=NOW)


# ------------------------------------------------- issue 11: bounded RSA key parameters


def _rsa_jwk_proof(n: int, e: int, *, alg: str = "RS256", signature: bytes = b"\x01" * 256) -> str:
    size = max(1, (n.bit_length() + 7) // 8)
    esize = max(1, (e.bit_length() + 7) // 8)
    jwk = {"kty": "RSA", "n": b64(n.to_bytes(size, "big")), "e": b64(e.to_bytes(esize, "big"))}
    head = enc({"typ": "dpop+jwt", "alg": alg, "jwk": jwk})
    body = enc({"jti": "j", "htm": "GET", "htu": HTU, "iat": NOW})
    return f"{head}.{body}.{b64(signature)}"


def _no_signature_work(monkeypatch: pytest.MonkeyPatch) -> None:
    from tokenlib import _jws

    def boom(*_: Any) -> bool:
        raise AssertionError("signature work was done for a key that must be refused first")

    monkeypatch.setattr(_jws, "verify_fitted", boom)


@pytest.mark.parametrize(
    ("bits", "e", "problem"),
    [
        (3072, 2**3071 + 1, "exponent"),  # issue 11: 60-83x an honest proof
        (2048, 3, "exponent"),
        (2048, 2**32 - 1, "exponent"),
        (2048, 65539, "exponent"),
        (8200, 65537, "at most"),
        (2040, 65537, "at least"),
    ],
)
def test_rsa_jwk_bounds_are_checked_before_signature_work(
    monkeypatch: pytest.MonkeyPatch, bits: int, e: int, problem: str
) -> None:
    _no_signature_work(monkeypatch)
    n = (1 << (bits - 1)) | 1
    policy = DPoPPolicy(max_rsa_bits=8192, algorithms=("RS256",))
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(_rsa_jwk_proof(n, e), htm="GET", htu=HTU, now=NOW, policy=policy)
    assert info.value.check == "jwk"
    assert problem in info.value.description


def test_rsa_policy_bound_default_4096_checked_before_signature_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_signature_work(monkeypatch)
    n = (1 << 4607) | 1  # 4608 bits: within the global 8192 bound, over the policy's
    proof = _rsa_jwk_proof(n, 65537)
    policy = DPoPPolicy(algorithms=("RS256",))
    assert policy.max_rsa_bits == 4096
    for _ in range(2):  # the second time from the parsed-header cache
        with pytest.raises(InvalidDPoPProof) as info:
            verify_proof(proof, htm="GET", htu=HTU, now=NOW, policy=policy)
        assert info.value.details["rsa_bits"] == 4608
        assert info.value.details["limit"] == 4096


def test_rsa_4096_and_e_65537_are_accepted(keys: dict[str, PrivateKey]) -> None:
    rsa_key = keys["RS256"]
    assert verify_proof(create_proof(rsa_key, "GET", HTU, now=NOW, alg="RS256"), htm="GET",
                        htu=HTU, now=NOW)  # fmt: skip


@pytest.mark.parametrize("bits", [1024, 9000, "x", True])
def test_policy_max_rsa_bits_is_bounded(bits: Any) -> None:
    with pytest.raises(ValueError, match="max_rsa_bits"):
        DPoPPolicy(max_rsa_bits=bits)
