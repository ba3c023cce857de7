"""tokenlib.introspection: RFC 7662 §2.2 responses that keep cnf and report token_type."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from _vectors import case

from tokenlib.bearer import Issuer, verify_access_token
from tokenlib.claims import AccessToken, parse_access_token_claims
from tokenlib.introspection import introspect
from tokenlib.jwks import JWKSet

NOW = 1_700_000_000
AUD = "https://rs.example.com"
JKT = case("rfc7638", "rfc9449-example-ec-p256")["thumbprint"]
X5T = case("rfc9440", "rfc9440-appA-client-cert")["x5t_s256_computed"]


def _access(make_token: Callable[..., str], jwks: JWKSet, **kw: Any) -> AccessToken:
    return verify_access_token(
        make_token(**kw), issuer="https://as.example.com", audience=AUD, jwks=jwks, now=NOW
    )


def test_unknown_token_is_inactive_only() -> None:
    assert introspect(None) == {"active": False}
    assert introspect(None, now=NOW) == {"active": False}


def test_active_bearer_token(make_token: Callable[..., str], jwks: JWKSet) -> None:
    token = _access(make_token, jwks)
    assert introspect(token, now=NOW) == {
        "active": True,
        "scope": "read write",
        "client_id": "s6BhdRkqt3",
        "sub": "alice",
        "aud": AUD,
        "iss": "https://as.example.com",
        "exp": NOW + 300,
        "iat": NOW,
        "jti": token.jti,
        "token_type": "Bearer",
    }


@pytest.mark.parametrize(
    ("binding", "cnf", "token_type"),
    [
        ({"jkt": JKT}, {"jkt": JKT}, "DPoP"),  # RFC 9449 §6.2
        ({"x5t_s256": X5T}, {"x5t#S256": X5T}, "Bearer"),  # RFC 8705 §3.2
        ({"jkt": JKT, "x5t_s256": X5T}, {"jkt": JKT, "x5t#S256": X5T}, "DPoP"),
    ],
)
def test_bound_tokens_keep_cnf(
    make_token: Callable[..., str],
    jwks: JWKSet,
    binding: dict[str, str],
    cnf: dict[str, str],
    token_type: str,
) -> None:
    response = introspect(_access(make_token, jwks, **binding), now=NOW)
    assert response["active"] is True
    assert response["cnf"] == cnf
    assert response["token_type"] == token_type


def test_unknown_cnf_members_and_extra_claims_are_preserved() -> None:
    claims = {
        "iss": "https://as.example.com",
        "sub": "alice",
        "aud": ["a", "b"],
        "client_id": "c",
        "iat": NOW,
        "exp": NOW + 60,
        "nbf": NOW - 1,
        "jti": "j",
        "auth_time": NOW - 30,
        "acr": "1",
        "groups": ["admins"],
        "cnf": {"jkt": JKT, "kc-jkt-type": "DPoP"},
    }
    token = parse_access_token_claims({"alg": "ES256", "typ": "at+jwt"}, claims)
    response = introspect(token, now=NOW)
    assert response["cnf"] == {"jkt": JKT, "kc-jkt-type": "DPoP"}
    assert response["aud"] == ["a", "b"]
    assert response["nbf"] == NOW - 1
    assert response["auth_time"] == NOW - 30
    assert response["acr"] == "1"
    assert "groups" not in response
    assert "scope" not in response
    response["cnf"]["jkt"] = "changed"  # the response is a copy
    assert token.claims["cnf"]["jkt"] == JKT
    json.dumps(response)


@pytest.mark.parametrize(
    ("at", "active"),
    [(NOW, True), (NOW + 299, True), (NOW + 300, False), (NOW + 10_000, False)],
)
def test_expiry_at_now(make_token: Callable[..., str], jwks: JWKSet, at: int, active: bool) -> None:
    response = introspect(_access(make_token, jwks), now=at)
    assert response["active"] is active
    if not active:
        assert response == {"active": False}  # RFC 7662 §2.2: nothing else


def test_not_yet_valid_is_inactive(issuer: Issuer) -> None:
    token = parse_access_token_claims(
        {"alg": "ES256"},
        {
            "iss": "i",
            "sub": "s",
            "aud": "a",
            "client_id": "c",
            "iat": NOW,
            "exp": NOW + 60,
            "nbf": NOW + 10,
            "jti": "j",
        },
    )
    assert introspect(token, now=NOW) == {"active": False}
    assert introspect(token, now=NOW + 10)["active"] is True
