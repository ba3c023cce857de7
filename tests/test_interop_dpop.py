"""DPoP interop with an independent JOSE implementation (joserfc, test-only).

Our proofs verify in joserfc using only the embedded ``jwk``; proofs joserfc signs
(ES256, EdDSA/Ed25519, PS256, ...) verify here; both agree on the ``jkt``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import JWKRegistry

from tokenlib.dpop import access_token_hash, create_proof, verify_proof
from tokenlib.errors import InvalidDPoPProof
from tokenlib.jwk import PrivateKey, jwk_thumbprint, public_jwk
from tokenlib.replay import MemoryReplayCache

NOW = 1_700_000_000
URL = "https://rs.example.com/api"
TOKEN = "an-access-token"
_EDDSA_WARNING = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
ALGS = [
    ("ES256", "ES256"),
    ("ES384", "ES384"),
    ("ES512", "ES512"),
    pytest.param("EdDSA", "EdDSA", marks=_EDDSA_WARNING),
    ("Ed25519", "EdDSA"),
    ("RS256", "RS256"),
    ("PS256", "PS256"),
]


def _registry(alg: str) -> jws.JWSRegistry:
    """joserfc refuses headers over 512 bytes by default; an RSA-2048 jwk header is larger."""
    registry = jws.JWSRegistry(algorithms=[alg])
    registry.max_header_length = 4096
    return registry


def _their_private_key(key: PrivateKey) -> Any:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return JWKRegistry.import_key(pem, public_jwk(key)["kty"])


@pytest.mark.parametrize(("alg", "key_alg"), ALGS)
def test_our_proofs_verify_in_joserfc_with_the_embedded_jwk(
    keys: dict[str, PrivateKey], alg: str, key_alg: str
) -> None:
    proof = create_proof(
        keys[key_alg], "POST", URL, access_token=TOKEN, nonce="n1", alg=alg, now=NOW
    )
    header = jws.extract_compact(proof.encode(), registry=_registry(alg)).headers()
    embedded = JWKRegistry.import_key(header["jwk"])
    assert not embedded.is_private
    assert embedded.thumbprint() == jwk_thumbprint(keys[key_alg])
    decoded = jws.deserialize_compact(proof, embedded, registry=_registry(alg))
    assert decoded.headers()["typ"] == "dpop+jwt"
    claims = json.loads(decoded.payload)
    assert claims["htm"] == "POST"
    assert claims["htu"] == URL
    assert claims["iat"] == NOW
    assert claims["nonce"] == "n1"
    assert claims["ath"] == access_token_hash(TOKEN)


@pytest.mark.parametrize(("alg", "key_alg"), ALGS)
def test_joserfc_proofs_verify_here(keys: dict[str, PrivateKey], alg: str, key_alg: str) -> None:
    key = keys[key_alg]
    their_key = _their_private_key(key)
    their_public = their_key.as_dict(private=False)
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": their_public}
    claims = {
        "jti": "their-jti-1234",
        "htm": "GET",
        "htu": URL + "?q=1",
        "iat": NOW,
        "ath": access_token_hash(TOKEN),
    }
    proof = jwt.encode(header, claims, their_key, algorithms=[alg])
    result = verify_proof(
        proof,
        htm="GET",
        htu=URL,
        access_token=TOKEN,
        now=NOW,
        replay_cache=MemoryReplayCache(),
        policy=None if alg not in ("ES512", "ES384") else _lenient(),
    )
    assert result.alg == alg
    assert result.jkt == their_key.thumbprint() == jwk_thumbprint(key)


def _lenient() -> Any:
    from tokenlib.dpop import DPoPPolicy

    return DPoPPolicy.lenient()


def test_joserfc_proof_with_private_jwk_is_refused(es256_key: PrivateKey) -> None:
    their_key = _their_private_key(es256_key)
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": their_key.as_dict(private=True)}
    claims = {"jti": "j", "htm": "GET", "htu": URL, "iat": NOW}
    proof = jwt.encode(header, claims, their_key, algorithms=["ES256"])
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(proof, htm="GET", htu=URL, now=NOW)
    assert info.value.check == "jwk"


def test_joserfc_hs256_proof_is_refused() -> None:
    secret = JWKRegistry.import_key({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"})
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}
    proof = jwt.encode(
        header, {"jti": "j", "htm": "GET", "htu": URL, "iat": NOW}, secret, algorithms=["HS256"]
    )
    with pytest.raises(InvalidDPoPProof) as info:
        verify_proof(proof, htm="GET", htu=URL, now=NOW)
    assert info.value.check == "alg"


def test_tampered_proof_is_refused_by_both(es256_key: PrivateKey) -> None:
    proof = create_proof(es256_key, "GET", URL, now=NOW)
    head, _body, sig = proof.split(".")
    claims = {"jti": "x", "htm": "GET", "htu": URL, "iat": NOW}
    from tokenlib.jwk import b64url_encode

    forged = f"{head}.{b64url_encode(json.dumps(claims).encode())}.{sig}"
    with pytest.raises(InvalidDPoPProof):
        verify_proof(forged, htm="GET", htu=URL, now=NOW)
    embedded = JWKRegistry.import_key(public_jwk(es256_key))
    with pytest.raises(BadSignatureError):
        jws.deserialize_compact(forged, embedded, algorithms=["ES256"])


def test_ath_agrees_with_an_independent_hash() -> None:
    import base64

    expected = (
        base64.urlsafe_b64encode(hashlib.sha256(TOKEN.encode()).digest()).rstrip(b"=").decode()
    )
    assert access_token_hash(TOKEN) == expected
