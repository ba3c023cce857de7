"""tokenlib.token_endpoint: DPoP at the token endpoint (RFC 9449 §5, §8, §10)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tokenlib.bearer import Issuer, verify_access_token
from tokenlib.dpop import DPoPPolicy, create_proof
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
from tokenlib.replay import NO_REPLAY_CHECK, MemoryReplayCache
from tokenlib.server import ResourceServer
from tokenlib.token_endpoint import (
    TOKEN_ENDPOINT_MAX_PER_CLIENT,
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


# -------------------------------------------------------------------- PAR (issue 11)


PAR_URL = "https://as.example.com/par"


def test_rfc9126_s2_3_dpop_jkt_mismatch_at_par_is_invalid_request(key: PrivateKey) -> None:
    """RFC 9126 §2.3 / RFC 9449 §10.1: a PAR request carries no grant, so a proof whose
    key differs from the dpop_jkt parameter is invalid_request (not invalid_grant)."""
    par = TokenEndpoint(PAR_URL, endpoint="par")
    with pytest.raises(InvalidRequest) as info:
        par.verify(
            proof_headers(key, url=PAR_URL), dpop_jkt=jwk_thumbprint(generate_key("ES256")), now=NOW
        )
    err = info.value
    assert err.error == "invalid_request"
    assert err.status_code == 400
    assert err.check == "dpop_jkt"
    assert "WWW-Authenticate" not in err.headers
    assert err.json_body()["error"] == "invalid_request"
    assert "RFC 9126 §2.3" in str(err.details["rfc"])


def test_par_dpop_jkt_without_proof_binds_to_that_key(key: PrivateKey) -> None:
    par = TokenEndpoint(PAR_URL, endpoint="par")
    jkt = jwk_thumbprint(key)
    result = par.verify({}, dpop_jkt=jkt, now=NOW)
    assert (result.proof, result.jkt) == (None, jkt)
    with pytest.raises(InvalidRequest):
        par.verify({}, dpop_jkt="not a thumbprint", now=NOW)
    with pytest.raises(ValueError, match="refresh"):
        par.verify({}, refresh_token_jkt=jkt, now=NOW)
    with pytest.raises(ValueError, match="endpoint"):
        TokenEndpoint(PAR_URL, endpoint="authorize")  # type: ignore[arg-type]
    assert "endpoint='par'" in repr(par)


def test_token_endpoint_dpop_jkt_mismatch_stays_invalid_grant(key: PrivateKey) -> None:
    endpoint = TokenEndpoint(TOKEN_URL)
    with pytest.raises(InvalidGrant):
        endpoint.verify(proof_headers(key), dpop_jkt=jwk_thumbprint(generate_key("ES256")), now=NOW)


# --------------------------------------------- record after client authentication (issue 11)


def test_check_records_nothing_and_record_after_auth(key: PrivateKey) -> None:
    cache = MemoryReplayCache(max_entries=100, max_per_owner=10)
    endpoint = TokenEndpoint(TOKEN_URL, replay_cache=cache)
    headers = proof_headers(key)
    checked = endpoint.check(headers, now=NOW)
    assert checked.jkt == jwk_thumbprint(key)
    assert len(cache) == 0
    endpoint.check(headers, now=NOW)  # still not a replay: nothing was recorded
    endpoint.record(checked, client_id="client-a", now=NOW)
    assert cache.owner_count("client-a", now=NOW) == 1
    with pytest.raises(ReplayDetected) as info:
        endpoint.record(endpoint.check(headers, now=NOW), client_id="client-a", now=NOW)
    assert info.value.status_code == 400  # rendered for a token endpoint
    endpoint.record(endpoint.check({}, now=NOW), client_id="client-a", now=NOW)  # no proof
    with pytest.raises(ValueError, match="client_id"):
        endpoint.record(checked, client_id="", now=NOW)


def test_unauthenticated_requests_add_no_replay_entries(key: PrivateKey) -> None:
    """Issue 11: proofs from the attacker's own keys, no client authentication: the
    endpoint is used as documented (check, authenticate, record), so N refused
    requests add 0 entries. Bounded count: 200."""
    cache = MemoryReplayCache(max_entries=100, max_per_owner=10)
    endpoint = TokenEndpoint(TOKEN_URL, replay_cache=cache)

    def authenticate(form: dict[str, str]) -> str:
        if form.get("client_secret") != "right":
            raise PermissionError("invalid_client")
        return form["client_id"]

    attacker = generate_key("ES256")
    refused = 0
    for _ in range(200):
        checked = endpoint.check(proof_headers(attacker), now=NOW)
        try:
            client = authenticate({"client_id": "x", "client_secret": "wrong"})
        except PermissionError:
            refused += 1
            continue
        endpoint.record(checked, client_id=client, now=NOW)
    assert refused == 200
    assert len(cache) == 0
    checked = endpoint.check(proof_headers(key), now=NOW)
    endpoint.record(checked, client_id=authenticate({"client_id": "c", "client_secret": "right"}))


def test_token_endpoint_flood_by_one_client_is_refused_others_succeed(key: PrivateKey) -> None:
    """One authenticated client floods with fresh proofs (each from a new key, so a
    per-key quota would not help): it is refused (429) past its quota, another client
    still gets its tokens. Bounded: quota 25, 120 attacker requests, store 200."""
    endpoint = TokenEndpoint(
        TOKEN_URL, replay_cache=MemoryReplayCache(max_entries=200, max_per_owner=25)
    )
    statuses: dict[int, int] = {}
    answers: set[tuple[str | None, str]] = set()
    for _ in range(120):
        try:
            endpoint.verify(proof_headers(generate_key("ES256")), client_id="mallory", now=NOW)
            status = 200
        except TokenError as err:
            status = err.status_code
            answers.add((err.headers.get("Retry-After"), err.json_body()["error"]))
        statuses[status] = statuses.get(status, 0) + 1
    assert statuses == {200: 25, 429: 95}
    assert answers == {("360", "invalid_dpop_proof")}
    for _ in range(25):
        assert endpoint.verify(proof_headers(key), client_id="alice", now=NOW).jkt


def test_default_token_endpoint_store_has_a_per_client_quota() -> None:
    endpoint = TokenEndpoint(TOKEN_URL)
    assert isinstance(endpoint.replay_cache, MemoryReplayCache)
    assert endpoint.replay_cache.max_per_owner == TOKEN_ENDPOINT_MAX_PER_CLIENT == 1_000
    with pytest.raises(ValueError, match="always checks replays"):
        TokenEndpoint(TOKEN_URL, replay_cache=NO_REPLAY_CHECK)  # type: ignore[arg-type]


def test_verify_without_client_id_uses_the_proof_key_as_owner(key: PrivateKey) -> None:
    cache = MemoryReplayCache(max_entries=100, max_per_owner=10)
    endpoint = TokenEndpoint(TOKEN_URL, replay_cache=cache)
    endpoint.verify(proof_headers(key), now=NOW)
    assert cache.owner_count(jwk_thumbprint(key), now=NOW) == 1


def test_token_endpoint_refuses_an_async_store() -> None:
    class AsyncStore:
        async def check_and_store(
            self, key: str, *, expires_at: float, now: float, owner: str | None = None
        ) -> bool:
            return True

    with pytest.raises(TypeError, match="synchronous"):
        TokenEndpoint(TOKEN_URL, replay_cache=AsyncStore())  # type: ignore[arg-type]


def test_flood_against_the_default_token_endpoint_store(key: PrivateKey) -> None:
    """The default TokenEndpoint: one authenticated client is refused (429) after 1,000
    live proofs, another client is not. Bounded: 1,001 + 5 requests."""
    endpoint = TokenEndpoint(TOKEN_URL)
    attacker = generate_key("ES256")
    for _ in range(TOKEN_ENDPOINT_MAX_PER_CLIENT):
        endpoint.verify(proof_headers(attacker), client_id="mallory", now=NOW)
    with pytest.raises(TokenError) as info:
        endpoint.verify(proof_headers(attacker), client_id="mallory", now=NOW)
    assert info.value.status_code == 429
    for _ in range(5):
        assert endpoint.verify(proof_headers(key), client_id="alice", now=NOW).jkt


def test_a_store_shorter_than_the_policy_window_is_refused_at_construction() -> None:
    """RFC 9449 §11.1: the token endpoint's store must guard the lenient policy's 1200 s."""

    class LossyStore(MemoryReplayCache):
        acceptance_window = 420

    with pytest.raises(ValueError, match=r"TokenEndpoint: .*accepts a proof for 1200 s"):
        TokenEndpoint(TOKEN_URL, replay_cache=LossyStore(), policy=DPoPPolicy.lenient())
    assert TokenEndpoint(TOKEN_URL, replay_cache=LossyStore(), policy=DPoPPolicy.rfc())
