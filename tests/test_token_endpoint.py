"""tokenlib.token_endpoint: DPoP at the token endpoint (RFC 9449 §5, §8, §10)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tokenlib.bearer import Issuer, verify_access_token
from tokenlib.dpop import create_proof
from tokenlib.errors import (
    InvalidDPoPProof,
    InvalidRequest,
    ReplayDetected,
    TokenError,
    UseDPoPNonce,
)
from tokenlib.jwk import PrivateKey, generate_key, jwk_thumbprint
from tokenlib.jwks import JWKSet
from tokenlib.nonce import NonceManager
from tokenlib.server import ResourceServer
from tokenlib.token_endpoint import (
    InvalidGrant,
    TokenEndpoint,
    check_refresh_token_binding,
    refresh_token_jkt,
    token_response,
)

NOW = 1_700_000_000
TOKEN_URL = "https://as.example.com/token"


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return generate_key("ES256")


@pytest.fixture
def endpoint() -> TokenEndpoint:
    return TokenEndpoint(TOKEN_URL)


def proof_headers(key: PrivateKey, **kw: Any) -> dict[str, str]:
    return {
        "DPoP": create_proof(
            key, kw.pop("method", "POST"), kw.pop("url", TOKEN_URL), now=kw.pop("now", NOW), **kw
        )
    }


def test_proof_gives_the_key_to_bind(endpoint: TokenEndpoint, key: PrivateKey) -> None:
    result = endpoint.verify(proof_headers(key), now=NOW)
    assert result.jkt == jwk_thumbprint(key)
    assert result.token_type == "DPoP"
    assert result.proof is not None
    assert result.response_headers == {}


def test_no_proof_means_bearer(endpoint: TokenEndpoint) -> None:
    result = endpoint.verify({"Content-Type": "application/x-www-form-urlencoded"}, now=NOW)
    assert (result.proof, result.jkt, result.token_type) == (None, None, "Bearer")


def test_end_to_end_issue_and_use(
    endpoint: TokenEndpoint, key: PrivateKey, issuer: Issuer, jwks: JWKSet
) -> None:
    request = endpoint.verify(proof_headers(key), now=NOW)
    access_token = issuer.issue(
        subject="alice", client_id="c", audience="https://rs.example.com", jkt=request.jkt, now=NOW
    )
    body = token_response(access_token, token_type=request.token_type, expires_in=300)
    assert body["token_type"] == "DPoP"
    token = verify_access_token(
        body["access_token"],
        issuer=issuer.issuer,
        audience="https://rs.example.com",
        jwks=jwks,
        now=NOW,
    )
    assert token.jkt == jwk_thumbprint(key)
    rs = ResourceServer(issuer=issuer.issuer, audience="https://rs.example.com", jwks=jwks)
    url = "https://rs.example.com/data"
    proof = create_proof(key, "GET", url, access_token=access_token, now=NOW)
    grant = rs.verify("GET", url, {"Authorization": f"DPoP {access_token}", "DPoP": proof}, now=NOW)
    assert grant.binding == "dpop"


NEG: list[
    tuple[str, Callable[[PrivateKey], dict[str, Any]], dict[str, Any], type[TokenError], str, str]
] = [
    (
        "proof-for-resource-with-ath",
        lambda k: proof_headers(k, url="https://rs.example.com/x"),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "htu",
    ),
    (
        "wrong-method",
        lambda k: proof_headers(k, method="GET"),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "htm",
    ),
    (
        "stale",
        lambda k: proof_headers(k, now=NOW - 3600),
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "iat",
    ),
    ("garbage", lambda k: {"DPoP": "x.y.z"}, {}, InvalidDPoPProof, "invalid_dpop_proof", "syntax"),
    (
        "two-dpop-headers",
        lambda k: [("DPoP", proof_headers(k)["DPoP"]), ("dpop", proof_headers(k)["DPoP"])],
        {},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "dpop_header",
    ),
    (
        "required-but-missing",
        lambda k: {},
        {"require_dpop": True},
        InvalidDPoPProof,
        "invalid_dpop_proof",
        "dpop_header",
    ),
    (
        "dpop-jkt-mismatch",
        lambda k: proof_headers(generate_key("ES256")),
        {"dpop_jkt": "jkt"},
        InvalidGrant,
        "invalid_grant",
        "dpop_jkt",
    ),
    (
        "dpop-jkt-without-proof",
        lambda k: {},
        {"dpop_jkt": "jkt"},
        InvalidGrant,
        "invalid_grant",
        "dpop_header",
    ),
    (
        "refresh-token-other-key",
        lambda k: proof_headers(generate_key("ES256")),
        {"refresh_token_jkt": "jkt"},
        InvalidGrant,
        "invalid_grant",
        "refresh_token_binding",
    ),
    (
        "refresh-token-without-proof",
        lambda k: {},
        {"refresh_token_jkt": "jkt"},
        InvalidGrant,
        "invalid_grant",
        "dpop_header",
    ),
    (
        "non-string-header",
        lambda k: [("DPoP", b"x")],
        {},
        InvalidRequest,
        "invalid_request",
        "headers",
    ),
]


@pytest.mark.parametrize(
    ("build", "kwargs", "cls", "code", "check"),
    [pytest.param(*row[1:], id=row[0]) for row in NEG],
)
def test_rejections_are_rendered_for_a_token_endpoint(
    endpoint: TokenEndpoint,
    key: PrivateKey,
    build: Callable[[PrivateKey], Any],
    kwargs: dict[str, Any],
    cls: type[TokenError],
    code: str,
    check: str,
) -> None:
    with pytest.raises(cls) as info:
        endpoint.verify(build(key), now=NOW, **kwargs)
    err = info.value
    assert err.error == code
    assert err.check == check
    assert err.status_code == 400
    assert "WWW-Authenticate" not in err.headers
    assert err.headers["Cache-Control"] == "no-store"
    assert err.json_body()["error"] == code


def test_matching_dpop_jkt_and_refresh_binding(endpoint: TokenEndpoint, key: PrivateKey) -> None:
    jkt = jwk_thumbprint(key)
    assert endpoint.verify(proof_headers(key), dpop_jkt=jkt, now=NOW).jkt == jkt
    assert endpoint.verify(proof_headers(key), refresh_token_jkt=jkt, now=NOW).jkt == jkt


def test_rfc9449_example_dpop_jkt_is_compared(endpoint: TokenEndpoint, key: PrivateKey) -> None:
    """§10 Figure 25's dpop_jkt is the RFC 7638 example key, not the proof key."""
    with pytest.raises(InvalidGrant) as info:
        endpoint.verify(
            proof_headers(key), dpop_jkt="NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", now=NOW
        )
    assert info.value.details["presented"] == jwk_thumbprint(key)


def test_replay_at_token_endpoint(endpoint: TokenEndpoint, key: PrivateKey) -> None:
    headers = proof_headers(key)
    endpoint.verify(headers, now=NOW)
    with pytest.raises(ReplayDetected) as info:
        endpoint.verify(headers, now=NOW)
    assert info.value.status_code == 400


def test_as_nonce_flow(key: PrivateKey) -> None:
    manager = NonceManager(b"a" * 32, lifetime=120, step=60, context=b"https://as.example.com")
    endpoint = TokenEndpoint(TOKEN_URL, require_nonce=True, nonce_manager=manager)
    with pytest.raises(UseDPoPNonce) as info:
        endpoint.verify(proof_headers(key), now=NOW)
    err = info.value
    assert err.status_code == 400  # RFC 9449 §8: 400 at the AS
    assert err.json_body() == {  # RFC 9449 §8 Figure 20
        "error": "use_dpop_nonce",
        "error_description": "Authorization server requires nonce in DPoP proof",
    }
    assert err.headers["DPoP-Nonce"] == manager.issue(now=NOW)
    assert "WWW-Authenticate" not in err.headers
    ok = endpoint.verify(proof_headers(key, nonce=err.nonce), now=NOW + 1)
    assert ok.response_headers == {}
    rotated = endpoint.verify(proof_headers(key, nonce=manager.issue(now=NOW - 60)), now=NOW)
    assert rotated.response_headers == {"DPoP-Nonce": manager.issue(now=NOW)}


def test_require_nonce_without_manager(key: PrivateKey) -> None:
    endpoint = TokenEndpoint(TOKEN_URL, require_nonce=True)
    with pytest.raises(UseDPoPNonce) as info:
        endpoint.verify(proof_headers(key), now=NOW)
    assert endpoint.verify(proof_headers(key, nonce=info.value.nonce), now=NOW).jkt


def test_refresh_token_binding_helpers(endpoint: TokenEndpoint, key: PrivateKey) -> None:
    proof = endpoint.verify(proof_headers(key), now=NOW).proof
    assert refresh_token_jkt(proof, public_client=True) == jwk_thumbprint(key)
    assert refresh_token_jkt(proof, public_client=False) is None
    assert refresh_token_jkt(None, public_client=True) is None
    check_refresh_token_binding(jwk_thumbprint(key), proof)
    with pytest.raises(InvalidGrant):
        check_refresh_token_binding(jwk_thumbprint(key), None)


def test_token_response() -> None:
    body = token_response("at", token_type="DPoP", expires_in=60, refresh_token="rt", scope="read")
    assert body == {
        "access_token": "at",
        "token_type": "DPoP",
        "expires_in": 60,
        "refresh_token": "rt",
        "scope": "read",
    }
    assert token_response("at", token_type="Bearer", expires_in=1) == {
        "access_token": "at",
        "token_type": "Bearer",
        "expires_in": 1,
    }
    with pytest.raises(ValueError, match="token_type"):
        token_response("at", token_type="bearer", expires_in=1)  # type: ignore[arg-type]


def test_url_is_normalised_and_validated(key: PrivateKey) -> None:
    endpoint = TokenEndpoint("HTTPS://AS.example.com:443/token")
    assert endpoint.url == TOKEN_URL
    assert endpoint.verify(proof_headers(key), now=NOW).jkt
    with pytest.raises(ValueError, match="absolute"):
        TokenEndpoint("/token")
    assert "TokenEndpoint(" in repr(endpoint)


def test_par_request_proof_then_token_request_with_same_key(key: PrivateKey) -> None:
    """RFC 9449 §10.1: a DPoP header at the PAR endpoint acts as dpop_jkt; both
    mechanisms together must agree; the token request must use the same key."""
    par = TokenEndpoint("https://as.example.com/par")
    token_endpoint = TokenEndpoint(TOKEN_URL)
    jkt = jwk_thumbprint(key)
    bound = par.verify(
        proof_headers(key, url="https://as.example.com/par"), dpop_jkt=jkt, now=NOW
    ).jkt
    assert bound == jkt
    with pytest.raises(InvalidGrant):
        par.verify(
            proof_headers(key, url="https://as.example.com/par"),
            dpop_jkt=jwk_thumbprint(generate_key("ES256")),
            now=NOW,
        )
    assert token_endpoint.verify(proof_headers(key), dpop_jkt=bound, now=NOW).jkt == jkt
    with pytest.raises(InvalidGrant):
        token_endpoint.verify(proof_headers(generate_key("ES256")), dpop_jkt=bound, now=NOW)
