"""tokenlib.bearer: issuing RFC 9068 access tokens and verifying them per RFC 9068 §4."""

from __future__ import annotations

import base64
import functools
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _vectors import case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenlib import _jws
from tokenlib.bearer import AccessTokenCache, Issuer, TokenVerifier, verify_access_token
from tokenlib.claims import REGISTERED_CLAIMS
from tokenlib.errors import InvalidToken, TokenError
from tokenlib.jwk import (
    DEFAULT_ALGORITHMS,
    PrivateKey,
    b64url_decode,
    b64url_encode,
    generate_key,
    jwk_thumbprint,
)
from tokenlib.jwks import JWKSet

NOW = 1_700_000_000  # the suite clock (conftest.NOW)
AUD = "https://rs.example.com"
JKT = case("rfc7638", "rfc9449-example-ec-p256")["thumbprint"]
X5T = case("rfc9440", "rfc9440-appA-client-cert")["x5t_s256_computed"]


def _decode(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    return json.loads(b64url_decode(head)), json.loads(b64url_decode(body))


def _verify(token: object, jwks: JWKSet | dict[str, Any], **kw: Any) -> Any:
    kwargs: dict[str, Any] = {
        "issuer": "https://as.example.com",
        "audience": AUD,
        "jwks": jwks,
        "now": NOW,
    }
    kwargs.update(kw)
    return verify_access_token(token, **kwargs)


# --- Issuer ------------------------------------------------------------------------------


def test_issued_token_has_rfc9068_header_and_claims(issuer: Issuer, es256_key: PrivateKey) -> None:
    token = issuer.issue(
        subject="alice", client_id="s6BhdRkqt3", audience=AUD, scope="read write", now=NOW
    )
    header, claims = _decode(token)
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": jwk_thumbprint(es256_key)}
    assert claims["iss"] == "https://as.example.com"
    assert claims["sub"] == "alice"
    assert claims["client_id"] == "s6BhdRkqt3"
    assert claims["aud"] == AUD
    assert claims["scope"] == "read write"
    assert claims["iat"] == NOW
    assert claims["exp"] == NOW + 300
    assert "cnf" not in claims
    assert len(b64url_decode(claims["jti"])) >= 16  # ≥ 128 random bits


def test_jti_is_unique(issuer: Issuer) -> None:
    jtis = {
        _decode(issuer.issue(subject="a", client_id="c", audience=AUD, now=NOW))[1]["jti"]
        for _ in range(200)
    }
    assert len(jtis) == 200


@pytest.mark.parametrize(
    ("key_alg", "alg", "expected"),
    [
        ("ES256", None, "ES256"),
        ("ES384", None, "ES384"),
        ("ES512", None, "ES512"),
        ("EdDSA", None, "EdDSA"),
        ("RS256", None, "PS256"),
        ("RS256", "RS256", "RS256"),
        ("EdDSA", "Ed25519", "Ed25519"),
    ],
)
def test_signing_alg_defaults_from_key(
    keys: dict[str, PrivateKey], key_alg: str, alg: str | None, expected: str
) -> None:
    signer = Issuer("https://as.example.com", keys[key_alg], alg=alg)
    token = signer.issue(subject="a", client_id="c", audience=AUD, now=NOW)
    assert _decode(token)[0]["alg"] == expected
    result = _verify(token, signer.jwks(), algorithms=(expected,))
    assert result.header["alg"] == expected


@pytest.mark.parametrize(
    ("key_alg", "alg"),
    [
        ("ES256", "ES384"),
        ("ES256", "RS256"),
        ("RS256", "ES256"),
        ("EdDSA", "ES256"),
        ("ES256", "HS256"),
        ("ES256", "none"),
    ],
)
def test_signing_alg_must_fit_key(keys: dict[str, PrivateKey], key_alg: str, alg: str) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        Issuer("https://as.example.com", keys[key_alg], alg=alg)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"issuer": ""}, "issuer"),
        ({"lifetime": 0}, "lifetime"),
        ({"lifetime": -5}, "lifetime"),
        ({"lifetime": True}, "lifetime"),
    ],
)
def test_issuer_arguments(es256_key: PrivateKey, kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"issuer": "https://as.example.com", "lifetime": 300}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Issuer(args.pop("issuer"), es256_key, **args)


def test_issue_binding_audience_list_scope_list_and_extras(issuer: Issuer) -> None:
    token = issuer.issue(
        subject="alice",
        client_id="c",
        audience=[AUD, "https://other.example.com"],
        scope=["read", "write"],
        jkt=JKT,
        x5t_s256=X5T,
        lifetime=60,
        now=NOW,
        jti="fixed-jti",
        extra_claims={"auth_time": NOW - 5, "acr": "urn:mace:incommon:iap:silver"},
    )
    _, claims = _decode(token)
    assert claims["aud"] == [AUD, "https://other.example.com"]
    assert claims["scope"] == "read write"
    assert claims["cnf"] == {"jkt": JKT, "x5t#S256": X5T}
    assert claims["exp"] == NOW + 60
    assert claims["jti"] == "fixed-jti"
    assert claims["acr"] == "urn:mace:incommon:iap:silver"
    result = _verify(token, issuer.jwks())
    assert result.binding == "dpop+mtls"
    assert result.audience == (AUD, "https://other.example.com")


@pytest.mark.parametrize("claim", sorted(REGISTERED_CLAIMS))
def test_extra_claims_may_not_override_registered_claims(issuer: Issuer, claim: str) -> None:
    with pytest.raises(ValueError, match=claim):
        issuer.issue(subject="a", client_id="c", audience=AUD, extra_claims={claim: "x"})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"subject": ""}, "subject"),
        ({"client_id": 5}, "client_id"),
        ({"audience": ""}, "audience"),
        ({"audience": []}, "audience"),
        ({"audience": ["ok", ""]}, "audience"),
        ({"scope": "a  b"}, "scope"),
        ({"scope": ['a"b']}, "scope"),
        ({"jkt": "short"}, "jkt"),
        ({"jkt": JKT + "="}, "jkt"),
        ({"x5t_s256": "nope"}, "x5t#S256"),
        ({"lifetime": 0}, "lifetime"),
        ({"jti": ""}, "jti"),
    ],
)
def test_issue_refuses_bad_arguments(issuer: Issuer, kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"subject": "a", "client_id": "c", "audience": AUD, "now": NOW}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        issuer.issue(**args)


def test_empty_scope_is_omitted(issuer: Issuer) -> None:
    _, claims = _decode(issuer.issue(subject="a", client_id="c", audience=AUD, scope=""))
    assert "scope" not in claims


def test_jwks_is_public_only_and_repr_hides_the_key(issuer: Issuer, es256_key: Any) -> None:
    document = issuer.jwks()
    (jwk,) = document["keys"]
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert jwk["kid"] == issuer.kid
    secret = str(es256_key.private_numbers().private_value)
    d = b64url_encode(es256_key.private_numbers().private_value.to_bytes(32, "big"))
    for text in (repr(issuer), str(issuer), json.dumps(document)):
        assert secret not in text
        assert d not in text
        assert "PRIVATE" not in text
    assert repr(issuer) == (
        f"Issuer(issuer='https://as.example.com', alg='ES256', kid='{issuer.kid}')"
    )


def test_custom_kid(es256_key: PrivateKey) -> None:
    signer = Issuer("https://as.example.com", es256_key, kid="2024-rotation")
    token = signer.issue(subject="a", client_id="c", audience=AUD, now=NOW)
    assert _decode(token)[0]["kid"] == "2024-rotation"
    assert _verify(token, signer.jwk_set()).subject == "a"


# --- verify_access_token: positives ---------------------------------------------------


def test_verify_returns_access_token(make_token: Callable[..., str], jwks: JWKSet) -> None:
    result = _verify(make_token(jkt=JKT), jwks)
    assert result.subject == "alice"
    assert result.scopes == frozenset({"read", "write"})
    assert result.binding == "dpop"
    assert result.jkt == JKT
    assert result.header["typ"] == "at+jwt"


@pytest.mark.parametrize(
    "audience", [AUD, [AUD], ("https://x.example", AUD), ["https://x.example", AUD]]
)
def test_audience_may_be_one_or_several(
    make_token: Callable[..., str], jwks: JWKSet, audience: Any
) -> None:
    assert _verify(make_token(), jwks, audience=audience).audience == (AUD,)


def test_token_audience_list_needs_one_match(make_token: Callable[..., str], jwks: JWKSet) -> None:
    token = make_token(audience=["https://a.example", AUD])
    assert _verify(token, jwks).audience == ("https://a.example", AUD)


@pytest.mark.parametrize(
    "typ", ["at+jwt", "AT+JWT", "At+Jwt", "application/at+jwt", "Application/AT+JWT"]
)
def test_typ_is_a_case_insensitive_media_type(
    es256_key: PrivateKey, issuer: Issuer, jwks: JWKSet, typ: str
) -> None:
    token = _forge(es256_key, issuer, header={"typ": typ})
    assert _verify(token, jwks).subject == "alice"


def test_jwks_may_be_a_mapping(make_token: Callable[..., str], issuer: Issuer) -> None:
    assert _verify(make_token(), issuer.jwks()).subject == "alice"


def test_accepts_datetime_now(make_token: Callable[..., str], jwks: JWKSet) -> None:
    from datetime import UTC, datetime

    assert _verify(make_token(), jwks, now=datetime.fromtimestamp(NOW + 10, tz=UTC)).jti


# --- verify_access_token: the negative table ------------------------------------------


def _forge(
    key: PrivateKey,
    issuer: Issuer,
    *,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    drop_header: tuple[str, ...] = (),
) -> str:
    """Sign arbitrary header/claims with ``key`` (defaults: a valid token at NOW)."""
    head: dict[str, Any] = {"alg": "ES256", "typ": "at+jwt", "kid": issuer.kid}
    head.update(header or {})
    body: dict[str, Any] = {
        "iss": "https://as.example.com",
        "sub": "alice",
        "aud": AUD,
        "client_id": "s6BhdRkqt3",
        "iat": NOW,
        "exp": NOW + 300,
        "jti": "jti-1",
        "scope": "read",
    }
    body.update(claims or {})
    for name in drop:
        body.pop(name)
    for name in drop_header:
        head.pop(name)
    return _jws.sign(head, body, key)


def _forge_without(claim: str, key: PrivateKey, issuer: Issuer) -> str:
    return _forge(key, issuer, drop=(claim,))


def _swap_signature(token: str, other: str) -> str:
    return token.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1]


_ATTACKER = generate_key("ES256")

# (id, how to build the token, verify overrides, expected check)
_NEGATIVE: list[Any] = [
    ("typ-missing", lambda k, i: _forge(k, i, drop_header=("typ",)), {}, "typ"),
    ("typ-jwt", lambda k, i: _forge(k, i, header={"typ": "JWT"}), {}, "typ"),
    ("typ-dpop", lambda k, i: _forge(k, i, header={"typ": "dpop+jwt"}), {}, "typ"),
    ("typ-app-jwt", lambda k, i: _forge(k, i, header={"typ": "application/jwt"}), {}, "typ"),
    ("typ-number", lambda k, i: _forge(k, i, header={"typ": 1}), {}, "typ"),
    ("typ-suffix", lambda k, i: _forge(k, i, header={"typ": "at+jwt; x=1"}), {}, "typ"),
    (
        "alg-none",
        lambda k, i: (
            _jws.encode_segment({"alg": "none", "typ": "at+jwt"})
            + "."
            + _forge(k, i).split(".")[1]
            + "."
        ),
        {},
        "alg",
    ),
    ("alg-not-allowed", lambda k, i: _forge(k, i), {"algorithms": ("EdDSA", "PS256")}, "alg"),
    ("kid-unknown", lambda k, i: _forge(k, i, header={"kid": "other"}), {}, "kid"),
    ("kid-number", lambda k, i: _forge(k, i, header={"kid": 5}), {}, "kid"),
    ("attacker-key-kid", lambda k, i: _forge(_ATTACKER, i), {}, "signature"),
    (
        "attacker-embedded-jwk",
        lambda k, i: _forge(
            _ATTACKER, i, header={"jwk": {"kty": "EC"}, "kid": jwk_thumbprint(_ATTACKER)}
        ),
        {},
        "kid",
    ),
    (
        "signature-swapped",
        lambda k, i: _swap_signature(_forge(k, i), _forge(k, i, claims={"sub": "bob"})),
        {},
        "signature",
    ),
    ("iss-other", lambda k, i: _forge(k, i, claims={"iss": "https://evil.example"}), {}, "iss"),
    (
        "iss-trailing-slash",
        lambda k, i: _forge(k, i, claims={"iss": "https://as.example.com/"}),
        {},
        "iss",
    ),
    ("iss-case", lambda k, i: _forge(k, i, claims={"iss": "https://AS.example.com"}), {}, "iss"),
    ("aud-other", lambda k, i: _forge(k, i, claims={"aud": "https://other.example"}), {}, "aud"),
    ("aud-list-other", lambda k, i: _forge(k, i, claims={"aud": ["a", "b"]}), {}, "aud"),
    ("aud-prefix", lambda k, i: _forge(k, i, claims={"aud": AUD + ".evil"}), {}, "aud"),
    ("exp-past", lambda k, i: _forge(k, i, claims={"exp": NOW - 1}), {}, "exp"),
    ("exp-now", lambda k, i: _forge(k, i, claims={"exp": NOW}), {}, "exp"),
    (
        "exp-beyond-leeway",
        lambda k, i: _forge(k, i, claims={"exp": NOW - 31}),
        {"leeway": 30},
        "exp",
    ),
    ("nbf-future", lambda k, i: _forge(k, i, claims={"nbf": NOW + 1}), {}, "nbf"),
    (
        "nbf-beyond-leeway",
        lambda k, i: _forge(k, i, claims={"nbf": NOW + 31}),
        {"leeway": 30},
        "nbf",
    ),
    ("iat-future", lambda k, i: _forge(k, i, claims={"iat": NOW + 1}), {}, "iat"),
    (
        "iat-beyond-leeway",
        lambda k, i: _forge(k, i, claims={"iat": NOW + 31}),
        {"leeway": 30},
        "iat",
    ),
    *[
        (f"missing-{c}", functools.partial(_forge_without, c), {}, c)
        for c in ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
    ],
    ("sub-number", lambda k, i: _forge(k, i, claims={"sub": 5}), {}, "sub"),
    ("exp-string", lambda k, i: _forge(k, i, claims={"exp": str(NOW + 300)}), {}, "exp"),
    ("scope-array", lambda k, i: _forge(k, i, claims={"scope": ["read"]}), {}, "scope"),
    ("cnf-string", lambda k, i: _forge(k, i, claims={"cnf": JKT}), {}, "cnf"),
    ("cnf-bad-jkt", lambda k, i: _forge(k, i, claims={"cnf": {"jkt": "x"}}), {}, "cnf"),
    ("cnf-only-unknown", lambda k, i: _forge(k, i, claims={"cnf": {"jwk": {}}}), {}, "cnf"),
    ("crit", lambda k, i: _forge(k, i, header={"crit": ["exp"]}), {}, "crit"),
    ("too-large", lambda k, i: _forge(k, i, claims={"pad": "x" * 20_000}), {}, "size"),
    ("size-limit-param", lambda k, i: _forge(k, i), {"max_length": 100}, "size"),
    ("jwe", lambda k, i: "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", {}, "syntax"),
    ("not-a-string", lambda k, i: None, {}, "syntax"),
    ("bytes", lambda k, i: _forge(k, i).encode(), {}, "syntax"),
]


@pytest.mark.parametrize(
    ("build", "overrides", "check"), [pytest.param(b, o, c, id=n) for n, b, o, c in _NEGATIVE]
)
def test_verify_negative_table(
    es256_key: PrivateKey,
    issuer: Issuer,
    jwks: JWKSet,
    build: Callable[[PrivateKey, Issuer], object],
    overrides: dict[str, Any],
    check: str,
) -> None:
    token = build(es256_key, issuer)
    for cache in (None, AccessTokenCache()):
        with pytest.raises(InvalidToken) as info:
            _verify(token, jwks, cache=cache, **overrides)
        err = info.value
        assert err.error == "invalid_token"
        assert err.status_code == 401
        assert err.check == check, err.explain()
        assert err.www_authenticate.startswith('Bearer error="invalid_token"')


def test_non_canonical_signature_encoding_is_refused(
    make_token: Callable[..., str], jwks: JWKSet
) -> None:
    token = make_token()
    head, body, sig = token.split(".")
    assert len(sig) % 4 == 2  # 64-byte ES256 signature: 86 chars, 4 padding bits
    index = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(sig[-1])
    twin = sig[:-1] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[index + 1]
    # Same bytes, different spelling: a lenient decoder (the stdlib's) cannot tell them apart.
    assert base64.urlsafe_b64decode(twin + "==") == base64.urlsafe_b64decode(sig + "==")
    with pytest.raises(ValueError, match="non-canonical"):
        b64url_decode(twin)
    with pytest.raises(InvalidToken) as info:
        _verify(f"{head}.{body}.{twin}", jwks)
    assert info.value.check == "syntax"


def test_leeway_accepts_within_tolerance(
    es256_key: PrivateKey, issuer: Issuer, jwks: JWKSet
) -> None:
    for claims in ({"exp": NOW - 29}, {"nbf": NOW + 30}, {"iat": NOW + 30}):
        assert _verify(_forge(es256_key, issuer, claims=claims), jwks, leeway=30).jti == "jti-1"


def test_check_order_signature_before_claims(
    es256_key: PrivateKey, issuer: Issuer, jwks: JWKSet
) -> None:
    # An expired token with a wrong issuer, audience and a bad signature is reported as a
    # bad signature: nothing unauthenticated is looked at (RFC 9068 §4, RFC 8725 §3.1).
    expired = _forge(
        es256_key,
        issuer,
        claims={"exp": NOW - 100, "iss": "https://evil.example", "aud": "x", "sub": 5},
    )
    forged = _swap_signature(expired, _forge(es256_key, issuer))
    with pytest.raises(InvalidToken) as info:
        _verify(forged, jwks)
    assert info.value.check == "signature"
    # typ and alg come before the key and signature
    with pytest.raises(InvalidToken) as typ:
        _verify(_swap_signature(_forge(es256_key, issuer, header={"typ": "JWT"}), forged), jwks)
    assert typ.value.check == "typ"
    # with a valid signature: claim types, then iss, then aud, then time
    with pytest.raises(InvalidToken) as types:
        _verify(expired, jwks)
    assert types.value.check == "sub"
    with pytest.raises(InvalidToken) as iss:
        _verify(
            _forge(
                es256_key,
                issuer,
                claims={"exp": NOW - 100, "iss": "https://evil.example", "aud": "x"},
            ),
            jwks,
        )
    assert iss.value.check == "iss"
    with pytest.raises(InvalidToken) as aud:
        _verify(_forge(es256_key, issuer, claims={"exp": NOW - 100, "aud": "x"}), jwks)
    assert aud.value.check == "aud"


def test_details_explain_the_failure(es256_key: PrivateKey, issuer: Issuer, jwks: JWKSet) -> None:
    with pytest.raises(InvalidToken) as info:
        _verify(_forge(es256_key, issuer, claims={"exp": NOW - 10}), jwks, leeway=5)
    assert info.value.details == {
        "check": "exp",
        "exp": NOW - 10,
        "now": NOW,
        "leeway": 5,
        "expired_for": 10.0,
        "rfc": "RFC 7519 §4.1.4",
    }
    with pytest.raises(InvalidToken) as aud:
        _verify(_forge(es256_key, issuer, claims={"aud": ["a", "b"]}), jwks)
    assert aud.value.details["expected"] == [AUD]
    assert aud.value.details["presented"] == ["a", "b"]


@pytest.mark.parametrize("algorithms", [("none",), ("HS256",), ("ES256", "HS512"), ()])
def test_allowlist_may_not_name_none_or_hmac(
    make_token: Callable[..., str], jwks: JWKSet, algorithms: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError, match="algorithms"):
        _verify(make_token(), jwks, algorithms=algorithms)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"leeway": -1}, "leeway"),
        ({"issuer": ""}, "issuer"),
        ({"audience": []}, "audience"),
        ({"audience": ""}, "audience"),
    ],
)
def test_verify_programmer_errors(
    make_token: Callable[..., str], jwks: JWKSet, kw: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        _verify(make_token(), jwks, **kw)


def test_rotated_key_set(es256_key: PrivateKey, make_token: Callable[..., str]) -> None:
    new_key = generate_key("ES256")
    new = Issuer("https://as.example.com", new_key)
    both = JWKSet.from_dict(
        {"keys": [*new.jwks()["keys"], *Issuer("https://as.example.com", es256_key).jwks()["keys"]]}
    )
    old_token = make_token()
    new_token = new.issue(subject="a", client_id="c", audience=AUD, now=NOW)
    assert _verify(old_token, both).subject == "alice"
    assert _verify(new_token, both).subject == "a"
    with pytest.raises(InvalidToken) as info:
        _verify(old_token, new.jwks())
    assert info.value.check == "kid"


# --- cache -----------------------------------------------------------------------------


def test_cache_hit_returns_the_verified_token(make_token: Callable[..., str], jwks: JWKSet) -> None:
    cache = AccessTokenCache()
    token = make_token()
    first = _verify(token, jwks, cache=cache)
    second = _verify(token, jwks, cache=cache, now=NOW + 100)
    assert second == first
    first.claims["sub"] = "mallory"  # a careless caller cannot poison the cache
    second.header["kid"] = "x"
    third = _verify(token, jwks, cache=cache, now=NOW + 200)
    assert third.claims["sub"] == "alice"
    assert third.header["kid"] != "x"
    assert (cache.hits, cache.misses) == (2, 1)
    assert len(cache) == 1
    stored = next(iter(cache._data._data))
    assert token not in repr(stored)  # keyed by digest, the token is not stored


def test_cache_reruns_time_checks(make_token: Callable[..., str], jwks: JWKSet) -> None:
    cache = AccessTokenCache()
    token = make_token()
    _verify(token, jwks, cache=cache)
    with pytest.raises(InvalidToken) as expired:
        _verify(token, jwks, cache=cache, now=NOW + 300)
    assert expired.value.check == "exp"
    assert len(cache) == 0  # expired entries are dropped
    early = make_token(now=NOW + 50)
    _verify(early, jwks, cache=cache, now=NOW + 50)
    with pytest.raises(InvalidToken) as future:
        _verify(early, jwks, cache=cache, now=NOW)  # clock went back: iat now in the future
    assert future.value.check == "iat"
    assert len(cache) == 1  # not expired: kept


@pytest.mark.parametrize(
    ("kw", "check"),
    [
        ({"audience": "https://other.example"}, "aud"),
        ({"issuer": "https://other-as.example"}, "iss"),
        ({"algorithms": ("EdDSA",)}, "alg"),
    ],
)
def test_cache_never_serves_another_configuration(
    make_token: Callable[..., str], jwks: JWKSet, kw: dict[str, Any], check: str
) -> None:
    cache = AccessTokenCache()
    token = make_token()
    _verify(token, jwks, cache=cache)
    with pytest.raises(InvalidToken) as info:
        _verify(token, jwks, cache=cache, **kw)
    assert info.value.check == check


def test_cache_is_invalidated_by_a_new_key_set(
    make_token: Callable[..., str], jwks: JWKSet
) -> None:
    cache = AccessTokenCache()
    token = make_token()
    _verify(token, jwks, cache=cache)
    rotated = Issuer("https://as.example.com", generate_key("ES256")).jwk_set()
    with pytest.raises(InvalidToken) as info:
        _verify(token, rotated, cache=cache)
    assert info.value.check == "kid"


def test_cache_never_stores_failures(make_token: Callable[..., str], jwks: JWKSet) -> None:
    cache = AccessTokenCache()
    token = make_token()
    bad = _swap_signature(token, make_token(subject="bob"))
    for _ in range(2):
        with pytest.raises(InvalidToken):
            _verify(bad, jwks, cache=cache)
    assert len(cache) == 0
    assert cache.hits == 0


def test_cache_is_bounded(make_token: Callable[..., str], jwks: JWKSet) -> None:
    cache = AccessTokenCache(max_entries=3)
    for i in range(10):
        _verify(make_token(jti=f"j{i}"), jwks, cache=cache)
    assert len(cache) == 3
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match="max_entries"):
        AccessTokenCache(max_entries=0)


def test_token_verifier(make_token: Callable[..., str], issuer: Issuer) -> None:
    verifier = TokenVerifier(issuer="https://as.example.com", audience=AUD, jwks=issuer.jwks())
    token = make_token()
    assert verifier.verify(token, now=NOW) == verifier.verify(token, now=NOW + 1)
    assert verifier.cache is not None
    assert verifier.cache.hits == 1
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token, now=NOW + 1000)
    assert info.value.check == "exp"
    uncached = TokenVerifier(
        issuer="https://as.example.com", audience=AUD, jwks=issuer.jwks(), cache=False
    )
    assert uncached.cache is None
    assert uncached.verify(token, now=NOW).subject == "alice"
    assert "cached=False" in repr(uncached)
    with pytest.raises(ValueError, match="algorithms"):
        TokenVerifier(issuer="i", audience=AUD, jwks=issuer.jwks(), algorithms=("HS256",))


# --- fuzz ------------------------------------------------------------------------------

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \x00é"


@st.composite
def _mutations(draw: st.DrawFn, token: str) -> str:
    chars = list(token)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["replace", "insert", "delete", "swap", "truncate"]))
        pos = draw(st.integers(0, max(0, len(chars) - 1)))
        if kind == "replace" and chars:
            chars[pos] = draw(st.sampled_from(_ALPHABET))
        elif kind == "insert":
            chars.insert(pos, draw(st.sampled_from(_ALPHABET)))
        elif kind == "delete" and chars:
            del chars[pos]
        elif kind == "swap" and len(chars) > 1:
            other = draw(st.integers(0, len(chars) - 1))
            chars[pos], chars[other] = chars[other], chars[pos]
        elif kind == "truncate":
            chars = chars[:pos]
    return "".join(chars)


_FUZZ_ISSUER = Issuer("https://as.example.com", generate_key("ES256"))
_FUZZ_TOKEN = _FUZZ_ISSUER.issue(
    subject="alice", client_id="c", audience=AUD, scope="read", jkt=JKT, now=NOW
)
_FUZZ_JWKS = _FUZZ_ISSUER.jwk_set()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations(_FUZZ_TOKEN))
def test_fuzz_character_mutations_are_refused(mutated: str) -> None:
    if mutated == _FUZZ_TOKEN:
        assert _verify(mutated, _FUZZ_JWKS).subject == "alice"
        return
    with pytest.raises(TokenError) as info:
        _verify(mutated, _FUZZ_JWKS)
    assert info.value.error == "invalid_token"


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=8), st.integers(0, 10_000), st.sampled_from([0, 1, 2]))
def test_fuzz_segment_byte_mutations_are_refused(noise: bytes, where: int, segment: int) -> None:
    parts = _FUZZ_TOKEN.split(".")
    raw = bytearray(b64url_decode(parts[segment]))
    pos = where % len(raw)
    for offset, flip in enumerate(noise[: len(raw) - pos]):
        raw[pos + offset] ^= flip
    parts[segment] = b64url_encode(bytes(raw))
    mutated = ".".join(parts)
    if mutated == _FUZZ_TOKEN:  # only an all-zero xor leaves the token unchanged
        return
    with pytest.raises(TokenError) as info:
        _verify(mutated, _FUZZ_JWKS)
    assert info.value.error == "invalid_token"


def test_cache_is_thread_safe(make_token: Callable[..., str], jwks: JWKSet) -> None:
    cache = AccessTokenCache(max_entries=8)
    tokens = [make_token(jti=f"t{i}") for i in range(16)]
    results: list[str] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        for i in range(64):
            token = tokens[(offset + i) % len(tokens)]
            subject = _verify(token, jwks, cache=cache).jti
            with lock:
                results.append(subject)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 * 64
    assert set(results) == {f"t{i}" for i in range(16)}
    assert cache.hits + cache.misses == 8 * 64
    assert len(cache) <= 8


_SIG_ISSUERS = {alg: Issuer("https://as.example.com", generate_key(alg)) for alg in ("EdDSA",)}
_SIG_ISSUERS["ES256"] = _FUZZ_ISSUER


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(_SIG_ISSUERS)), st.binary(max_size=300))
def test_fuzz_arbitrary_signatures(alg: str, signature: bytes) -> None:
    signer = _SIG_ISSUERS[alg]
    token = signer.issue(subject="alice", client_id="c", audience=AUD, now=NOW, jti="j")
    forged = token.rsplit(".", 1)[0] + "." + b64url_encode(signature)
    with pytest.raises(InvalidToken) as info:
        _verify(forged, signer.jwk_set())
    assert info.value.check == "signature"


def test_token_verifier_configuration_is_read_only(issuer: Issuer) -> None:
    # verify() trusts the configuration validated in __init__, so it cannot be swapped.
    verifier = TokenVerifier(issuer="https://as.example.com", audience=AUD, jwks=issuer.jwks())
    assert verifier.audience == (AUD,)
    assert verifier.algorithms == DEFAULT_ALGORITHMS
    assert verifier.leeway == 0
    assert verifier.max_length == _jws.MAX_TOKEN_LENGTH
    assert isinstance(verifier.jwks, JWKSet)
    for name, value in [
        ("audience", "https://rs.example.com"),
        ("algorithms", ("none",)),
        ("issuer", "x"),
        ("jwks", {}),
        ("leeway", -5),
        ("max_length", 10**9),
    ]:
        with pytest.raises(AttributeError):
            setattr(verifier, name, value)
    verifier.cache = None  # the cache may be swapped
    assert verifier.cache is None


@pytest.mark.parametrize(
    "algorithms",
    [
        ("ES256", "HS256"),
        ("none",),
        (),
        ["ES256", "HS256"],
        (["ES256"],),
        ("ES256", None),
    ],
)
def test_allowlist_memo_never_admits_a_bad_list(
    make_token: Callable[..., str], jwks: JWKSet, algorithms: Any
) -> None:
    token = make_token()
    assert _verify(token, jwks, algorithms=("ES256", "PS256")).subject == "alice"
    for _ in range(2):  # after good lists were remembered
        with pytest.raises(ValueError, match="algorithms"):
            _verify(token, jwks, algorithms=algorithms)


@pytest.mark.parametrize("exp", [10**400, -(10**400)])
def test_numeric_date_too_large_for_a_float_is_refused(
    es256_key: PrivateKey, issuer: Issuer, jwks: JWKSet, exp: int
) -> None:
    head = _jws.encode_segment({"alg": "ES256", "typ": "at+jwt", "kid": issuer.kid})
    claims = {
        "iss": "https://as.example.com",
        "sub": "alice",
        "aud": AUD,
        "client_id": "c",
        "iat": NOW,
        "exp": exp,
        "jti": "j",
    }
    token = _jws.sign(
        {"alg": "ES256", "typ": "at+jwt", "kid": issuer.kid}, claims, es256_key, header_segment=head
    )
    for cache in (None, AccessTokenCache()):
        with pytest.raises(InvalidToken) as info:
            _verify(token, jwks, cache=cache)
        assert info.value.check == "exp"
