"""tokenlib.server.ResourceServer: scheme selection, bindings, downgrade, nonces, challenges."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from _vectors import case

from tokenlib import _jws
from tokenlib.bearer import Issuer
from tokenlib.dpop import DPoPPolicy, create_proof
from tokenlib.errors import (
    InsufficientScope,
    InvalidDPoPProof,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    ReplayDetected,
    ReplayStateUnavailable,
    TokenError,
    UseDPoPNonce,
)
from tokenlib.jwk import PrivateKey, generate_key, jwk_thumbprint
from tokenlib.jwks import JWKSet
from tokenlib.nonce import NonceManager
from tokenlib.replay import DEFAULT_MAX_PER_OWNER, NO_REPLAY_CHECK, MemoryReplayCache
from tokenlib.server import Grant, ResourceServer

NOW = 1_700_000_000
ISSUER = "https://as.example.com"
AUDIENCE = "https://rs.example.com"
URL = "https://rs.example.com/api/items"
ALGS = DPoPPolicy(algorithms=("ES256", "PS256"))


@pytest.fixture(scope="module")
def dpop_key() -> PrivateKey:
    return generate_key("ES256")


@pytest.fixture
def rs(jwks: JWKSet) -> ResourceServer:
    return ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, policy=ALGS)


@pytest.fixture
def dpop_token(make_token: Callable[..., str], dpop_key: PrivateKey) -> str:
    return make_token(jkt=jwk_thumbprint(dpop_key))


def dpop_headers(
    token: str, key: PrivateKey, *, method: str = "GET", url: str = URL, **kw: Any
) -> list[tuple[str, str]]:
    proof = create_proof(key, method, url, access_token=token, now=kw.pop("now", NOW), **kw)
    return [("Authorization", f"DPoP {token}"), ("DPoP", proof)]


# --------------------------------------------------------------------------- success


def test_bearer_token(rs: ResourceServer, make_token: Callable[..., str]) -> None:
    grant = rs.verify("GET", URL, {"Authorization": f"Bearer {make_token()}"}, now=NOW)
    assert isinstance(grant, Grant)
    assert grant.binding == "bearer"
    assert grant.subject == "alice"
    assert grant.client_id == "s6BhdRkqt3"
    assert grant.scopes == frozenset({"read", "write"})
    assert grant.proof is None
    assert grant.cert_thumbprint is None
    assert grant.claims["iss"] == ISSUER
    assert grant.response_headers == {}


def test_dpop_bound_token(rs: ResourceServer, dpop_token: str, dpop_key: PrivateKey) -> None:
    grant = rs.verify("GET", URL, dpop_headers(dpop_token, dpop_key), now=NOW)
    assert grant.binding == "dpop"
    assert grant.proof is not None
    assert grant.proof.jkt == jwk_thumbprint(dpop_key) == grant.token.jkt


def test_certificate_bound_token(
    rs: ResourceServer, make_token: Callable[..., str], client_cert: Any
) -> None:
    token = make_token(x5t_s256=client_cert.thumbprint)
    grant = rs.verify(
        "GET", URL, {"Authorization": f"Bearer {token}"}, client_cert=client_cert.cert, now=NOW
    )
    assert grant.binding == "mtls"
    assert grant.cert_thumbprint == client_cert.thumbprint


def test_dpop_and_certificate_bound_token(
    rs: ResourceServer, make_token: Callable[..., str], dpop_key: PrivateKey, client_cert: Any
) -> None:
    token = make_token(jkt=jwk_thumbprint(dpop_key), x5t_s256=client_cert.thumbprint)
    grant = rs.verify(
        "GET", URL, dpop_headers(token, dpop_key), client_cert=client_cert.der, now=NOW
    )
    assert grant.binding == "dpop+mtls"
    assert grant.proof is not None
    assert grant.cert_thumbprint == client_cert.thumbprint


@pytest.mark.parametrize(
    ("auth_name", "dpop_name", "scheme"),
    [
        ("authorization", "dpop", "DPoP"),
        ("AUTHORIZATION", "DPOP", "dpop"),
        ("Authorization", "DPoP", "DPOP"),
    ],
)
def test_header_and_scheme_names_are_case_insensitive(
    rs: ResourceServer,
    dpop_token: str,
    dpop_key: PrivateKey,
    auth_name: str,
    dpop_name: str,
    scheme: str,
) -> None:
    proof = create_proof(dpop_key, "GET", URL, access_token=dpop_token, now=NOW)
    headers = {auth_name: f"{scheme} {dpop_token}", dpop_name: proof, "Host": "ignored"}
    assert rs.verify("GET", URL, headers, now=NOW).binding == "dpop"


def test_bearer_scheme_name_case_insensitive(
    rs: ResourceServer, make_token: Callable[..., str]
) -> None:
    assert (
        rs.verify("GET", URL, [("authorization", f"bEaReR {make_token()}")], now=NOW).binding
        == "bearer"
    )


def test_bearer_token_with_dpop_header_is_accepted_and_proof_ignored(
    rs: ResourceServer, make_token: Callable[..., str], dpop_key: PrivateKey
) -> None:
    token = make_token()
    proof = create_proof(dpop_key, "GET", URL, access_token=token, now=NOW)
    grant = rs.verify("GET", URL, [("Authorization", f"Bearer {token}"), ("DPoP", proof)], now=NOW)
    assert grant.binding == "bearer"
    assert grant.proof is None


def test_unknown_cnf_members_are_tolerated(
    rs: ResourceServer, issuer: Issuer, keys: dict[str, PrivateKey], dpop_key: PrivateKey
) -> None:
    claims = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "client_id": "c",
        "iat": NOW,
        "exp": NOW + 60,
        "jti": "t1",
        "cnf": {"jkt": jwk_thumbprint(dpop_key), "kc-jkt-type": "x"},
    }
    token = _jws.sign({"alg": "ES256", "typ": "at+jwt", "kid": issuer.kid}, claims, keys["ES256"])
    assert rs.verify("GET", URL, dpop_headers(token, dpop_key), now=NOW).binding == "dpop"


def test_query_and_fragment_are_ignored_on_both_sides(
    rs: ResourceServer, dpop_token: str, dpop_key: PrivateKey
) -> None:
    headers = dpop_headers(dpop_token, dpop_key, url=URL + "?page=1#top")
    assert rs.verify("GET", "https://RS.example.com:443/api/items?page=2", headers, now=NOW)


def test_validated_tokens_are_cached(
    rs: ResourceServer, dpop_token: str, dpop_key: PrivateKey
) -> None:
    for _ in range(3):
        rs.verify("GET", URL, dpop_headers(dpop_token, dpop_key), now=NOW)
    assert rs.verifier.cache is not None
    assert rs.verifier.cache.hits >= 2


def test_required_scopes(rs: ResourceServer, make_token: Callable[..., str]) -> None:
    headers = {"Authorization": f"Bearer {make_token()}"}
    assert rs.verify("GET", URL, headers, now=NOW, required_scopes=["read"])
    with pytest.raises(InsufficientScope) as info:
        rs.verify("GET", URL, headers, now=NOW, required_scopes=["read", "admin"])
    assert info.value.status_code == 403
    assert info.value.details["missing"] == ["admin"]
    assert info.value.www_authenticate.startswith('Bearer error="insufficient_scope"')


# --------------------------------------------------------------------- rejections


def _proof_other_key(token: str) -> list[tuple[str, str]]:
    return dpop_headers(token, generate_key("ES256"))


NEG: list[
    tuple[
        str,
        Callable[[str, str, PrivateKey, Any], list[tuple[str, str]]],
        type[TokenError],
        str,
        int,
        str,
        str,
    ]
] = [
    # (id, headers(dpop, bearer, key, other), class, code, status, check, challenge prefix)
    (
        "two-authorization-headers",
        lambda d, b, k, o: [("Authorization", f"Bearer {b}"), ("authorization", f"DPoP {d}")],
        InvalidRequest,
        "invalid_request",
        400,
        "authorization",
        'Bearer error="invalid_request"',
    ),
    (
        "two-dpop-headers",
        lambda d, b, k, o: [
            *dpop_headers(d, k),
            ("DPoP", create_proof(k, "GET", URL, access_token=d, now=NOW)),
        ],
        InvalidDPoPProof,
        "invalid_dpop_proof",
        401,
        "dpop_header",
        'DPoP error="invalid_dpop_proof"',
    ),
    (
        "dpop-headers-merged-by-proxy",
        lambda d, b, k, o: [
            ("Authorization", f"DPoP {d}"),
            (
                "DPoP",
                create_proof(k, "GET", URL, access_token=d, now=NOW)
                + ", "
                + create_proof(k, "GET", URL, access_token=d, now=NOW),
            ),
        ],
        InvalidDPoPProof,
        "invalid_dpop_proof",
        401,
        "dpop_header",
        "DPoP ",
    ),
    (
        "dpop-scheme-without-proof",
        lambda d, b, k, o: [("Authorization", f"DPoP {d}")],
        InvalidDPoPProof,
        "invalid_dpop_proof",
        401,
        "dpop_header",
        'DPoP error="invalid_dpop_proof"',
    ),
    (
        "dpop-bound-token-as-bearer",
        lambda d, b, k, o: [("Authorization", f"Bearer {d}")],
        InvalidToken,
        "invalid_token",
        401,
        "downgrade",
        'Bearer error="invalid_token"',
    ),
    (
        "dpop-bound-token-as-bearer-with-proof",
        lambda d, b, k, o: [("Authorization", f"Bearer {d}"), dpop_headers(d, k)[1]],
        InvalidToken,
        "invalid_token",
        401,
        "downgrade",
        'Bearer error="invalid_token"',
    ),
    (
        "bearer-token-with-dpop-scheme",
        lambda d, b, k, o: dpop_headers(b, k),
        InvalidToken,
        "invalid_token",
        401,
        "cnf.jkt",
        'DPoP error="invalid_token"',
    ),
    (
        "proof-from-other-key",
        lambda d, b, k, o: _proof_other_key(d),
        InvalidToken,
        "invalid_token",
        401,
        "cnf.jkt",
        'DPoP error="invalid_token", error_description="Invalid DPoP key binding"',
    ),
    (
        "proof-for-other-token",
        lambda d, b, k, o: [
            ("Authorization", f"DPoP {d}"),
            ("DPoP", create_proof(k, "GET", URL, access_token=b, now=NOW)),
        ],
        InvalidDPoPProof,
        "invalid_dpop_proof",
        401,
        "ath",
        'DPoP error="invalid_dpop_proof"',
    ),
    (
        "proof-without-ath",
        lambda d, b, k, o: [
            ("Authorization", f"DPoP {d}"),
            ("DPoP", create_proof(k, "GET", URL, now=NOW)),
        ],
        InvalidDPoPProof,
        "invalid_dpop_proof",
        401,
        "ath",
        "DPoP ",
    ),
    (
        "proof-for-other-path",
        lambda d, b, k, o: dpop_headers(d, k, url="https://rs.example.com/api/other"),
        InvalidDPoPProof,
        "invalid_dpop_proof",
        401,
        "htu",
        "DPoP ",
    ),
    (
        "proof-for-other-method",
        lambda d, b, k, o: dpop_headers(d, k, method="POST"),
        InvalidDPoPProof,
        "invalid_dpop_proof",
        401,
        "htm",
        "DPoP ",
    ),
    (
        "stale-proof",
        lambda d, b, k, o: dpop_headers(d, k, now=NOW - 3600),
        InvalidDPoPProof,
        "invalid_dpop_proof",
        401,
        "iat",
        "DPoP ",
    ),
    (
        "garbage-proof",
        lambda d, b, k, o: [("Authorization", f"DPoP {d}"), ("DPoP", "not-a-jwt")],
        InvalidDPoPProof,
        "invalid_dpop_proof",
        401,
        "syntax",
        "DPoP ",
    ),
    (
        "no-credentials",
        lambda d, b, k, o: [("Accept", "*/*")],
        MissingToken,
        "invalid_request",
        401,
        "authorization",
        'DPoP algs="ES256 PS256", Bearer',
    ),
    (
        "proof-without-token",
        lambda d, b, k, o: [dpop_headers(d, k)[1]],
        MissingToken,
        "invalid_request",
        401,
        "authorization",
        "DPoP algs=",
    ),
    (
        "unsupported-scheme",
        lambda d, b, k, o: [("Authorization", "Basic dXNlcjpwdw==")],
        MissingToken,
        "invalid_request",
        401,
        "scheme",
        "DPoP algs=",
    ),
    (
        "scheme-without-token",
        lambda d, b, k, o: [("Authorization", "Bearer")],
        InvalidRequest,
        "invalid_request",
        400,
        "authorization_syntax",
        'DPoP error="invalid_request"',
    ),
    (
        "token-with-space",
        lambda d, b, k, o: [("Authorization", "Bearer a b")],
        InvalidRequest,
        "invalid_request",
        400,
        "authorization_syntax",
        "DPoP ",
    ),
    (
        "garbage-token",
        lambda d, b, k, o: [("Authorization", "Bearer abc.def.ghi")],
        InvalidToken,
        "invalid_token",
        401,
        "syntax",
        'Bearer error="invalid_token"',
    ),
    (
        "cert-bound-without-cert",
        lambda d, b, k, o: [("Authorization", f"Bearer {o['cert_token']}")],
        InvalidToken,
        "invalid_token",
        401,
        "x5t#S256",
        'Bearer error="invalid_token"',
    ),
    (
        "cert-bound-other-cert",
        lambda d, b, k, o: [
            ("Authorization", f"Bearer {o['cert_token']}"),
            ("X-Use-Other-Cert", "1"),
        ],
        InvalidToken,
        "invalid_token",
        401,
        "x5t#S256",
        'Bearer error="invalid_token"',
    ),
    (
        "dpop-and-cert-bound-without-cert",
        lambda d, b, k, o: dpop_headers(o["both_token"], k),
        InvalidToken,
        "invalid_token",
        401,
        "x5t#S256",
        'DPoP error="invalid_token"',
    ),
]


@pytest.mark.parametrize(
    ("build", "cls", "code", "status", "check", "challenge"),
    [pytest.param(*row[1:], id=row[0]) for row in NEG],
)
def test_rejections(
    rs: ResourceServer,
    make_token: Callable[..., str],
    dpop_token: str,
    dpop_key: PrivateKey,
    client_cert: Any,
    other_client_cert: Any,
    build: Callable[..., list[tuple[str, str]]],
    cls: type[TokenError],
    code: str,
    status: int,
    check: str,
    challenge: str,
) -> None:
    extra = {
        "cert_token": make_token(x5t_s256=client_cert.thumbprint),
        "both_token": make_token(jkt=jwk_thumbprint(dpop_key), x5t_s256=client_cert.thumbprint),
    }
    headers = build(dpop_token, make_token(), dpop_key, extra)
    cert = other_client_cert.cert if ("X-Use-Other-Cert", "1") in headers else None
    with pytest.raises(cls) as info:
        rs.verify("GET", URL, headers, client_cert=cert, now=NOW)
    err = info.value
    assert err.error == code
    assert err.status_code == status
    assert err.check == check
    assert err.headers["WWW-Authenticate"].startswith(challenge)
    assert err.headers["Cache-Control"] == "no-store"


def test_challenges_follow_rfc9449_figures(jwks: JWKSet, make_token: Callable[..., str]) -> None:
    rs = ResourceServer(
        issuer=ISSUER, audience=AUDIENCE, jwks=jwks, policy=ALGS, schemes=("Bearer", "DPoP")
    )
    with pytest.raises(MissingToken) as missing:
        rs.verify("GET", URL, {}, now=NOW)
    assert missing.value.www_authenticate == 'Bearer, DPoP algs="ES256 PS256"'  # Figure 17
    with pytest.raises(InvalidToken) as invalid:
        rs.verify("GET", URL, {"Authorization": "Bearer INVALID_TOKEN"}, now=NOW)
    value = invalid.value.www_authenticate
    assert value.startswith('Bearer error="invalid_token", error_description="')  # Figure 18
    assert value.endswith(', DPoP algs="ES256 PS256"')
    token = make_token()
    with pytest.raises(InvalidRequest) as ambiguous:
        rs.verify(
            "GET",
            URL,
            [("Authorization", f"Bearer {token}"), ("Authorization", f"DPoP {token}")],
            now=NOW,
        )
    assert ambiguous.value.status_code == 400  # Figure 19
    assert ambiguous.value.www_authenticate == (
        'Bearer error="invalid_request", error_description="Multiple methods used to include '
        'access token", DPoP error="invalid_request", error_description="Multiple methods used '
        'to include access token", algs="ES256 PS256"'
    )


def test_realm_is_advertised(jwks: JWKSet) -> None:
    rs = ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, policy=ALGS, realm="api")
    with pytest.raises(MissingToken) as info:
        rs.verify("GET", URL, {}, now=NOW)
    assert info.value.www_authenticate == 'DPoP realm="api", algs="ES256 PS256", Bearer realm="api"'


def test_replayed_request_is_refused(
    rs: ResourceServer, dpop_token: str, dpop_key: PrivateKey
) -> None:
    headers = dpop_headers(dpop_token, dpop_key)
    rs.verify("GET", URL, headers, now=NOW)
    with pytest.raises(ReplayDetected) as info:
        rs.verify("GET", URL, headers, now=NOW + 1)
    assert info.value.www_authenticate.startswith('DPoP error="invalid_dpop_proof"')


def test_shared_replay_cache_across_instances(
    jwks: JWKSet, dpop_token: str, dpop_key: PrivateKey
) -> None:
    shared = MemoryReplayCache()
    a = ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, replay_cache=shared)
    b = ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, replay_cache=shared)
    headers = dpop_headers(dpop_token, dpop_key)
    a.verify("GET", URL, headers, now=NOW)
    with pytest.raises(ReplayDetected):
        b.verify("GET", URL, headers, now=NOW)


def test_expired_token_is_refused_even_when_cached(
    rs: ResourceServer, make_token: Callable[..., str]
) -> None:
    headers = {"Authorization": f"Bearer {make_token()}"}
    rs.verify("GET", URL, headers, now=NOW)
    with pytest.raises(InvalidToken) as info:
        rs.verify("GET", URL, headers, now=NOW + 301)
    assert info.value.check == "exp"


def test_wrong_audience(jwks: JWKSet, make_token: Callable[..., str]) -> None:
    rs = ResourceServer(issuer=ISSUER, audience="https://other.example.com", jwks=jwks)
    with pytest.raises(InvalidToken) as info:
        rs.verify("GET", URL, {"Authorization": f"Bearer {make_token()}"}, now=NOW)
    assert info.value.check == "aud"


def test_non_string_headers(rs: ResourceServer) -> None:
    with pytest.raises(InvalidRequest) as info:
        rs.verify("GET", URL, [("Authorization", b"Bearer x")], now=NOW)  # type: ignore[list-item]
    assert info.value.check == "headers"


# ------------------------------------------------------------------ scheme config


def test_bearer_only_server_refuses_dpop_scheme(
    jwks: JWKSet, dpop_token: str, dpop_key: PrivateKey
) -> None:
    rs = ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, schemes=("Bearer",))
    with pytest.raises(MissingToken) as info:
        rs.verify("GET", URL, dpop_headers(dpop_token, dpop_key), now=NOW)
    assert info.value.www_authenticate == "Bearer"


def test_dpop_only_server_refuses_bearer_scheme(
    jwks: JWKSet, make_token: Callable[..., str]
) -> None:
    rs = ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, schemes=("dpop",), policy=ALGS)
    with pytest.raises(MissingToken) as info:
        rs.verify("GET", URL, {"Authorization": f"Bearer {make_token()}"}, now=NOW)
    assert info.value.www_authenticate == 'DPoP algs="ES256 PS256"'


@pytest.mark.parametrize(
    "kwargs",
    [
        {"schemes": ("Basic",)},
        {"schemes": ()},
        {"schemes": ("DPoP", "dpop")},
        {"public_base_url": "https://api.example.com/svc?x=1"},
        {"public_base_url": "/svc"},
        {"public_base_url": "ftp://api.example.com"},
    ],
)
def test_bad_configuration(jwks: JWKSet, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - message differs per setting
        ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, **kwargs)


class _LossyStore(MemoryReplayCache):
    """A shared store that can lose its state: it declares its ``acceptance_window``."""

    def __init__(self, acceptance_window: int) -> None:
        super().__init__()
        self.acceptance_window = acceptance_window


def test_a_store_shorter_than_the_policy_window_is_refused_at_construction(
    jwks: JWKSet,
) -> None:
    """RFC 9449 §11.1: with ±5 min (900 s) a store guarding 420 s after a state loss lets a
    pre-loss proof be replayed from 420 s on; refused before any request is served."""
    wide = DPoPPolicy(iat_past=300, iat_future=300)
    with pytest.raises(ValueError, match=r"ResourceServer: .*acceptance_window=420 s"):
        ResourceServer(
            issuer=ISSUER, audience=AUDIENCE, jwks=jwks, policy=wide, replay_cache=_LossyStore(420)
        )
    rs = ResourceServer(
        issuer=ISSUER, audience=AUDIENCE, jwks=jwks, policy=wide, replay_cache=_LossyStore(900)
    )
    assert rs.policy.acceptance_window == 900


# ------------------------------------------------------------- public base URL


@pytest.fixture
def proxied(jwks: JWKSet) -> ResourceServer:
    return ResourceServer(
        issuer=ISSUER, audience=AUDIENCE, jwks=jwks, public_base_url="https://api.example.com/svc/"
    )


@pytest.mark.parametrize(
    "request_url",
    ["/items?x=1", "http://10.0.0.7:8080/items", "items", "/items#frag"],
)
def test_public_base_url_builds_htu_from_path_only(
    proxied: ResourceServer, dpop_token: str, dpop_key: PrivateKey, request_url: str
) -> None:
    headers = dpop_headers(dpop_token, dpop_key, url="https://api.example.com/svc/items")
    headers += [
        ("Host", "evil.example"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Proto", "http"),
    ]
    assert proxied.verify("GET", request_url, headers, now=NOW).proof is not None
    assert proxied.htu_for(request_url) == "https://api.example.com/svc/items"


def test_public_base_url_ignores_forwarded_host(
    proxied: ResourceServer, dpop_token: str, dpop_key: PrivateKey
) -> None:
    headers = dpop_headers(dpop_token, dpop_key, url="https://evil.example/svc/items")
    headers += [("X-Forwarded-Host", "evil.example")]
    with pytest.raises(InvalidDPoPProof) as info:
        proxied.verify("GET", "/items", headers, now=NOW)
    assert info.value.details["expected"] == "https://api.example.com/svc/items"


def test_host_laundering_path_cannot_win(
    proxied: ResourceServer, dpop_token: str, dpop_key: PrivateKey
) -> None:
    """auth0 #244: the request really targets /svc/admin; a proof for /svc/intended must fail."""
    headers = dpop_headers(dpop_token, dpop_key, url="https://api.example.com/svc/intended")
    with pytest.raises(InvalidDPoPProof) as info:
        proxied.verify(
            "GET", "/admin", [*headers, ("Host", "api.example.com/svc/intended?")], now=NOW
        )
    assert info.value.check == "htu"


def test_relative_url_without_base_is_an_invalid_request(
    rs: ResourceServer, dpop_token: str, dpop_key: PrivateKey
) -> None:
    with pytest.raises(InvalidRequest) as info:
        rs.verify("GET", "/api/items", dpop_headers(dpop_token, dpop_key), now=NOW)
    assert info.value.status_code == 400
    with pytest.raises(ValueError, match="absolute"):
        rs.htu_for("/api/items")


# ------------------------------------------------------------------------ nonces


@pytest.fixture
def manager() -> NonceManager:
    return NonceManager(b"n" * 32, lifetime=120, step=60)


@pytest.fixture
def nonce_rs(jwks: JWKSet, manager: NonceManager) -> ResourceServer:
    return ResourceServer(
        issuer=ISSUER, audience=AUDIENCE, jwks=jwks, require_nonce=True, nonce_manager=manager
    )


def test_nonce_challenge_matches_rfc9449_figure_24(
    nonce_rs: ResourceServer, dpop_token: str, dpop_key: PrivateKey
) -> None:
    figure = case("rfc9449", "nonce-error-example")
    with pytest.raises(UseDPoPNonce) as info:
        nonce_rs.verify("GET", URL, dpop_headers(dpop_token, dpop_key), now=NOW)
    assert info.value.www_authenticate.startswith(figure["www_authenticate"] + ", algs=")
    assert set(info.value.headers) >= {"WWW-Authenticate", "DPoP-Nonce", "Cache-Control"}


def test_nonce_required_then_retry(
    nonce_rs: ResourceServer, dpop_token: str, dpop_key: PrivateKey
) -> None:
    with pytest.raises(UseDPoPNonce) as info:
        nonce_rs.verify("GET", URL, dpop_headers(dpop_token, dpop_key), now=NOW)
    err = info.value
    assert err.status_code == 401
    assert err.www_authenticate.startswith('DPoP error="use_dpop_nonce"')
    assert err.nonce is not None
    assert err.headers["DPoP-Nonce"] == err.nonce
    grant = nonce_rs.verify(
        "GET", URL, dpop_headers(dpop_token, dpop_key, nonce=err.nonce), now=NOW + 1
    )
    assert grant.proof is not None
    assert grant.proof.nonce == err.nonce
    assert grant.response_headers == {}


def test_stale_nonce_gets_a_fresh_one(
    nonce_rs: ResourceServer, manager: NonceManager, dpop_token: str, dpop_key: PrivateKey
) -> None:
    stale = manager.issue(now=NOW - 3600)
    with pytest.raises(UseDPoPNonce) as info:
        nonce_rs.verify("GET", URL, dpop_headers(dpop_token, dpop_key, nonce=stale), now=NOW)
    assert info.value.nonce == manager.issue(now=NOW)


def test_rotated_nonce_is_sent_on_success(
    nonce_rs: ResourceServer, manager: NonceManager, dpop_token: str, dpop_key: PrivateKey
) -> None:
    previous = manager.issue(now=NOW - 60)
    grant = nonce_rs.verify("GET", URL, dpop_headers(dpop_token, dpop_key, nonce=previous), now=NOW)
    assert grant.response_headers == {"DPoP-Nonce": manager.issue(now=NOW)}


def test_nonce_offered_with_missing_token(nonce_rs: ResourceServer, manager: NonceManager) -> None:
    with pytest.raises(MissingToken) as info:
        nonce_rs.verify("GET", URL, {}, now=NOW)
    assert info.value.headers["DPoP-Nonce"] == manager.issue(now=NOW)


def test_nonce_from_another_server_is_refused(
    nonce_rs: ResourceServer, dpop_token: str, dpop_key: PrivateKey
) -> None:
    foreign = NonceManager(b"f" * 32).issue(now=NOW)
    with pytest.raises(UseDPoPNonce):
        nonce_rs.verify("GET", URL, dpop_headers(dpop_token, dpop_key, nonce=foreign), now=NOW)


def test_require_nonce_without_manager_creates_one(
    jwks: JWKSet, dpop_token: str, dpop_key: PrivateKey
) -> None:
    rs = ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, require_nonce=True)
    assert rs.nonce_manager is not None
    with pytest.raises(UseDPoPNonce) as info:
        rs.verify("GET", URL, dpop_headers(dpop_token, dpop_key), now=NOW)
    assert info.value.nonce is not None
    assert rs.verify(
        "GET", URL, dpop_headers(dpop_token, dpop_key, nonce=info.value.nonce), now=NOW
    )


def test_repr(rs: ResourceServer) -> None:
    assert "ResourceServer(" in repr(rs)


def test_proxy_authorization_is_never_read(
    rs: ResourceServer, dpop_token: str, dpop_key: PrivateKey
) -> None:
    """RFC 9449 §7.1: the DPoP scheme MUST NOT be used with Proxy-Authorization."""
    proof = create_proof(dpop_key, "GET", URL, access_token=dpop_token, now=NOW)
    headers = [("Proxy-Authorization", f"DPoP {dpop_token}"), ("DPoP", proof)]
    with pytest.raises(MissingToken):
        rs.verify("GET", URL, headers, now=NOW)


@pytest.mark.parametrize("container", [list, tuple, dict, iter])
def test_every_header_container_gives_the_same_grant(
    rs: ResourceServer, dpop_token: str, dpop_key: PrivateKey, container: Any
) -> None:
    pairs = dpop_headers(dpop_token, dpop_key)
    headers = container(pairs) if container is not dict else dict(pairs)
    grant = rs.verify("GET", URL, headers, now=NOW)
    # The hot path builds Grant without __init__; it must equal a normally built one.
    rebuilt = Grant(
        token=grant.token,
        binding=grant.token.binding,
        subject=grant.subject,
        client_id=grant.client_id,
        scopes=grant.scopes,
        proof=grant.proof,
        cert_thumbprint=grant.cert_thumbprint,
        claims=grant.claims,
        response_headers=grant.response_headers,
    )
    assert grant == rebuilt
    assert grant.binding == "dpop"


@pytest.mark.parametrize("separator", [",", ", ", " ,"])
def test_dpop_values_merged_with_a_comma_are_refused(
    rs: ResourceServer, dpop_token: str, dpop_key: PrivateKey, separator: str
) -> None:
    authorization, (_, proof) = dpop_headers(dpop_token, dpop_key)
    with pytest.raises(InvalidDPoPProof) as info:
        rs.verify("GET", URL, [authorization, ("DPoP", proof + separator + proof)], now=NOW)
    assert info.value.check == "dpop_header"


# ------------------------------------------------------------- averify and async stores


class AsyncMemoryCache:
    """An AsyncReplayCache over MemoryReplayCache that records what it was given."""

    def __init__(self, **kw: Any) -> None:
        self.inner = MemoryReplayCache(**kw)
        self.calls: list[dict[str, Any]] = []

    async def check_and_store(
        self, key: str, *, expires_at: float, now: float, owner: str | None = None
    ) -> bool:
        self.calls.append({"key": key, "expires_at": expires_at, "now": now, "owner": owner})
        return self.inner.check_and_store(key, expires_at=expires_at, now=now, owner=owner)


def test_averify_awaits_an_async_cache_and_passes_the_jkt_as_owner(
    jwks: JWKSet, dpop_token: str, dpop_key: PrivateKey
) -> None:
    cache = AsyncMemoryCache()
    rs = ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, replay_cache=cache)
    headers = dpop_headers(dpop_token, dpop_key)
    grant = asyncio.run(rs.averify("GET", URL, headers, now=NOW))
    assert grant.binding == "dpop"
    assert [c["owner"] for c in cache.calls] == [jwk_thumbprint(dpop_key)]
    assert cache.calls[0]["expires_at"] == NOW + 360
    with pytest.raises(ReplayDetected) as info:
        asyncio.run(rs.averify("GET", URL, headers, now=NOW + 1))
    assert info.value.scheme == "DPoP"
    assert "WWW-Authenticate" in info.value.headers


def test_verify_with_an_async_cache_is_a_clear_type_error(
    jwks: JWKSet, dpop_token: str, dpop_key: PrivateKey, make_token: Callable[..., str]
) -> None:
    rs = ResourceServer(
        issuer=ISSUER, audience=AUDIENCE, jwks=jwks, replay_cache=AsyncMemoryCache()
    )
    with pytest.raises(TypeError, match="averify"):
        rs.verify("GET", URL, dpop_headers(dpop_token, dpop_key), now=NOW)
    # a bearer request needs no replay store, so it works either way
    bearer = make_token()
    assert rs.verify("GET", URL, {"Authorization": f"Bearer {bearer}"}, now=NOW).binding == "bearer"


def test_averify_with_a_sync_cache_and_same_outcomes_as_verify(
    rs: ResourceServer, dpop_token: str, dpop_key: PrivateKey, make_token: Callable[..., str]
) -> None:
    headers = dpop_headers(dpop_token, dpop_key)
    grant = asyncio.run(rs.averify("GET", URL, headers, now=NOW))
    assert grant.proof is not None
    with pytest.raises(ReplayDetected):
        rs.verify("GET", URL, headers, now=NOW)
    # an error raised by the shared checks is the same from both entry points
    bad = [("Authorization", f"DPoP {dpop_token}")]
    errors = []
    for call in (
        lambda: rs.verify("GET", URL, bad, now=NOW),
        lambda: asyncio.run(rs.averify("GET", URL, bad, now=NOW)),
    ):
        with pytest.raises(InvalidDPoPProof) as info:
            call()
        errors.append((info.value.check, info.value.status_code, info.value.www_authenticate))
    assert errors[0] == errors[1]


def test_failed_request_does_not_burn_the_proof(
    rs: ResourceServer, dpop_key: PrivateKey, make_token: Callable[..., str]
) -> None:
    """The jti is recorded only after every other check (scope here) passed."""
    token = make_token(jkt=jwk_thumbprint(dpop_key), scope="read")
    headers = dpop_headers(token, dpop_key)
    with pytest.raises(InsufficientScope):
        rs.verify("GET", URL, headers, now=NOW, required_scopes=["write"])
    assert rs.verify("GET", URL, headers, now=NOW, required_scopes=["read"]).scopes == {"read"}


def test_no_replay_check_is_refused_by_a_server(jwks: JWKSet) -> None:
    with pytest.raises(ValueError, match="always checks replays"):
        ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, replay_cache=NO_REPLAY_CHECK)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="check_and_store"):
        ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, replay_cache=object())  # type: ignore[arg-type]
    default = ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks)
    assert isinstance(default.replay_cache, MemoryReplayCache)
    assert default.replay_cache.max_per_owner == DEFAULT_MAX_PER_OWNER


# ------------------------------------------------------------- client_cert_thumbprint


def test_client_cert_thumbprint_binds_like_the_certificate(
    rs: ResourceServer, make_token: Callable[..., str], client_cert: Any, other_client_cert: Any
) -> None:
    token = make_token(x5t_s256=client_cert.thumbprint)
    auth = {"Authorization": f"Bearer {token}"}
    grant = rs.verify("GET", URL, auth, client_cert_thumbprint=client_cert.thumbprint, now=NOW)
    assert (grant.binding, grant.cert_thumbprint) == ("mtls", client_cert.thumbprint)
    grant = asyncio.run(
        rs.averify("GET", URL, auth, client_cert_thumbprint=client_cert.thumbprint, now=NOW)
    )
    assert grant.cert_thumbprint == client_cert.thumbprint
    with pytest.raises(InvalidToken) as info:
        rs.verify("GET", URL, auth, client_cert_thumbprint=other_client_cert.thumbprint, now=NOW)
    assert info.value.details["computed"] == other_client_cert.thumbprint


@pytest.mark.parametrize(
    "value",
    ["", "short", "A" * 44, "+" * 43, "A" * 42 + "B", "A" * 42 + "=", "\u00e9" * 43],
)
def test_rfc8705_s3_malformed_forwarded_thumbprint_is_refused(
    rs: ResourceServer, make_token: Callable[..., str], client_cert: Any, value: str
) -> None:
    token = make_token(x5t_s256=client_cert.thumbprint)
    with pytest.raises(InvalidRequest) as info:
        rs.verify("GET", URL, {"Authorization": f"Bearer {token}"},
                  client_cert_thumbprint=value, now=NOW)  # fmt: skip
    assert info.value.check == "x5t#S256"


def test_client_cert_and_thumbprint_are_mutually_exclusive(
    rs: ResourceServer, make_token: Callable[..., str], client_cert: Any
) -> None:
    token = make_token(x5t_s256=client_cert.thumbprint)
    with pytest.raises(ValueError, match="not both"):
        rs.verify("GET", URL, {"Authorization": f"Bearer {token}"}, client_cert=client_cert.cert,
                  client_cert_thumbprint=client_cert.thumbprint, now=NOW)  # fmt: skip
    with pytest.raises(ValueError, match="not both"):
        asyncio.run(rs.averify("GET", URL, {"Authorization": f"Bearer {token}"},
                    client_cert=client_cert.cert, client_cert_thumbprint=client_cert.thumbprint,
                    now=NOW))  # fmt: skip


# ----------------------------------------------------------------------- flood (issue 11)


def test_flood_from_one_key_is_refused_while_another_client_succeeds(
    jwks: JWKSet, make_token: Callable[..., str], dpop_key: PrivateKey
) -> None:
    """Issue 11: one client holding one valid DPoP token filled the default replay store
    with fresh proofs and every other DPoP client got 503. Bounded: store 400, quota 20,
    150 attacker proofs."""
    rs = ResourceServer(
        issuer=ISSUER, audience=AUDIENCE, jwks=jwks,
        replay_cache=MemoryReplayCache(max_entries=400, max_per_owner=20),
    )  # fmt: skip
    attacker_key = generate_key("ES256")
    attacker_token = make_token(jkt=jwk_thumbprint(attacker_key))
    outcomes: dict[int, int] = {}
    retry_after: set[str] = set()
    for _ in range(150):
        try:
            rs.verify("GET", URL, dpop_headers(attacker_token, attacker_key), now=NOW)
            status = 200
        except TokenError as err:
            status = err.status_code
            retry_after.add(err.headers.get("Retry-After", "missing"))
        outcomes[status] = outcomes.get(status, 0) + 1
    assert outcomes == {200: 20, 429: 130}
    assert retry_after == {"360"}
    victim_token = make_token(jkt=jwk_thumbprint(dpop_key))
    for _ in range(20):
        assert rs.verify("GET", URL, dpop_headers(victim_token, dpop_key), now=NOW).proof


def test_default_store_sizes(jwks: JWKSet) -> None:
    rs = ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks)
    assert isinstance(rs.replay_cache, MemoryReplayCache)
    assert (rs.replay_cache.max_entries, rs.replay_cache.max_per_owner) == (100_000, 5_000)


def test_averify_fails_closed_when_the_async_store_cannot_answer(
    jwks: JWKSet, dpop_token: str, dpop_key: PrivateKey
) -> None:
    class DownStore:
        async def check_and_store(
            self, key: str, *, expires_at: float, now: float, owner: str | None = None
        ) -> bool:
            raise ReplayStateUnavailable("the shared replay store is unreachable")

    rs = ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, replay_cache=DownStore())
    with pytest.raises(ReplayStateUnavailable) as info:
        asyncio.run(rs.averify("GET", URL, dpop_headers(dpop_token, dpop_key), now=NOW))
    assert info.value.status_code == 503
    assert info.value.headers["Retry-After"] == "1"


@pytest.mark.slow
def test_flood_against_the_default_store(
    jwks: JWKSet, make_token: Callable[..., str], dpop_key: PrivateKey
) -> None:
    """The defaults themselves (no sizing by the test): one key gets its 5,000 proofs,
    the next is refused with 429, another client is unaffected. Bounded: 5,001 + 10."""
    rs = ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks)
    attacker_key = generate_key("ES256")
    token = make_token(jkt=jwk_thumbprint(attacker_key))
    auth = ("Authorization", f"DPoP {token}")
    for _ in range(DEFAULT_MAX_PER_OWNER):
        proof = create_proof(attacker_key, "GET", URL, access_token=token, now=NOW)
        rs.verify("GET", URL, [auth, ("DPoP", proof)], now=NOW)
    proof = create_proof(attacker_key, "GET", URL, access_token=token, now=NOW)
    with pytest.raises(TokenError) as info:
        rs.verify("GET", URL, [auth, ("DPoP", proof)], now=NOW)
    assert info.value.status_code == 429
    victim = make_token(jkt=jwk_thumbprint(dpop_key))
    for _ in range(10):
        assert rs.verify("GET", URL, dpop_headers(victim, dpop_key), now=NOW).proof
