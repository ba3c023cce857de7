"""Interop with an independent JOSE implementation (joserfc, test-only dependency).

Tokens we issue verify in joserfc; tokens joserfc signs verify here; RFC 7638
thumbprints agree. joserfc is never imported by tokenlib itself.
"""

from __future__ import annotations

from typing import Any

import pytest
from _vectors import cases
from joserfc import jws, jwt
from joserfc.jwk import JWKRegistry, KeySet

from tokenlib.bearer import Issuer, verify_access_token
from tokenlib.errors import InvalidToken
from tokenlib.jwk import PrivateKey, jwk_thumbprint, public_jwk
from tokenlib.jwks import JWKSet

NOW = 1_700_000_000
AUD = "https://rs.example.com"
ISS = "https://as.example.com"
# (JWS alg, key fixture)
# joserfc warns that "EdDSA" is deprecated by RFC 9864 (we accept both names).
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


def _their_key(key: PrivateKey, private: bool = False) -> Any:
    from cryptography.hazmat.primitives import serialization

    if private:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        kty = {"EC": "EC", "OKP": "OKP", "RSA": "RSA"}[public_jwk(key)["kty"]]
        return JWKRegistry.import_key(pem, kty)
    return JWKRegistry.import_key(public_jwk(key))


@pytest.mark.parametrize(("alg", "key_alg"), ALGS)
def test_our_tokens_verify_in_joserfc(keys: dict[str, PrivateKey], alg: str, key_alg: str) -> None:
    issuer = Issuer(ISS, keys[key_alg], alg=alg)
    token = issuer.issue(
        subject="alice",
        client_id="c",
        audience=AUD,
        scope="read",
        jkt=jwk_thumbprint(keys["ES256"]),
        now=NOW,
    )
    their_keys = KeySet.import_key_set(issuer.jwks())  # type: ignore[arg-type]
    decoded = jwt.decode(token, their_keys, algorithms=[alg])
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.header["kid"] == issuer.kid
    assert decoded.claims["sub"] == "alice"
    assert decoded.claims["cnf"] == {"jkt": jwk_thumbprint(keys["ES256"])}
    registry = jwt.JWTClaimsRegistry(
        now=NOW, iss={"essential": True, "value": ISS}, aud={"essential": True, "value": AUD}
    )
    registry.validate(decoded.claims)


@pytest.mark.parametrize(("alg", "key_alg"), ALGS)
def test_joserfc_tokens_verify_here(keys: dict[str, PrivateKey], alg: str, key_alg: str) -> None:
    key = keys[key_alg]
    kid = jwk_thumbprint(key)
    claims = {
        "iss": ISS,
        "sub": "bob",
        "aud": [AUD],
        "client_id": "c",
        "iat": NOW,
        "exp": NOW + 60,
        "jti": "their-jti",
        "scope": "a b",
    }
    token = jwt.encode(
        {"alg": alg, "typ": "at+jwt", "kid": kid}, claims, _their_key(key, True), algorithms=[alg]
    )
    jwks = JWKSet.from_dict({"keys": [{**public_jwk(key), "kid": kid}]})
    result = verify_access_token(
        token, issuer=ISS, audience=AUD, jwks=jwks, algorithms=(alg,), now=NOW
    )
    assert result.subject == "bob"
    assert result.scopes == frozenset({"a", "b"})
    assert result.audience == (AUD,)


def test_joserfc_default_typ_jwt_is_not_an_access_token(es256_key: PrivateKey) -> None:
    # joserfc's default header typ is "JWT": RFC 9068 §4 requires at+jwt, so refuse it.
    claims = {
        "iss": ISS,
        "sub": "bob",
        "aud": AUD,
        "client_id": "c",
        "iat": NOW,
        "exp": NOW + 60,
        "jti": "j",
    }
    token = jwt.encode({"alg": "ES256"}, claims, _their_key(es256_key, True))
    with pytest.raises(InvalidToken) as info:
        verify_access_token(
            token, issuer=ISS, audience=AUD, jwks=JWKSet.from_keys(es256_key.public_key()), now=NOW
        )
    assert info.value.check == "typ"


def test_joserfc_tampered_token_is_refused_by_both(es256_key: PrivateKey) -> None:
    issuer = Issuer(ISS, es256_key)
    token = issuer.issue(subject="alice", client_id="c", audience=AUD, now=NOW)
    head, _, sig = token.split(".")
    other = issuer.issue(subject="mallory", client_id="c", audience=AUD, now=NOW)
    spliced = f"{head}.{other.split('.')[1]}.{sig}"
    with pytest.raises(InvalidToken) as info:
        verify_access_token(spliced, issuer=ISS, audience=AUD, jwks=issuer.jwks(), now=NOW)
    assert info.value.check == "signature"
    from joserfc.errors import BadSignatureError

    with pytest.raises(BadSignatureError):
        jws.deserialize_compact(spliced, _their_key(es256_key), algorithms=["ES256"])


@pytest.mark.parametrize("key_alg", ["ES256", "ES384", "ES512", "EdDSA", "RS256"])
def test_thumbprints_agree(keys: dict[str, PrivateKey], key_alg: str) -> None:
    ours = jwk_thumbprint(keys[key_alg])
    theirs = _their_key(keys[key_alg]).thumbprint()
    assert ours == theirs
    assert Issuer(ISS, keys[key_alg]).kid == theirs


@pytest.mark.parametrize("vector", cases("rfc7638"))
def test_rfc7638_vectors_agree_with_joserfc(vector: dict[str, Any]) -> None:
    theirs = JWKRegistry.import_key(vector["jwk"]).thumbprint()
    assert theirs == vector["thumbprint"] == jwk_thumbprint(vector["jwk"])
