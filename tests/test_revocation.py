"""tokenlib.revocation: RFC 7009 revocation checked against the token's cnf (issue 11)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tokenlib.bearer import verify_access_token
from tokenlib.claims import AccessToken
from tokenlib.dpop import create_proof
from tokenlib.errors import InvalidDPoPProof, InvalidRequest, InvalidToken, UnauthorizedClient
from tokenlib.jwk import PrivateKey, generate_key, jwk_thumbprint
from tokenlib.jwks import JWKSet
from tokenlib.replay import MemoryReplayCache
from tokenlib.revocation import authorize_revocation, check_holder
from tokenlib.token_endpoint import TokenEndpoint

NOW = 1_700_000_000
ISSUER = "https://as.example.com"
AUDIENCE = "https://rs.example.com"
CLIENT_ID = "s6BhdRkqt3"
REVOKE_URL = "https://as.example.com/revoke"


@pytest.fixture(scope="module")
def holder_key() -> PrivateKey:
    return generate_key("ES256")


def _verified(raw: str, jwks: JWKSet) -> AccessToken:
    return verify_access_token(raw, issuer=ISSUER, audience=AUDIENCE, jwks=jwks, now=NOW)


def _proof(key: PrivateKey) -> Any:
    endpoint = TokenEndpoint(REVOKE_URL)
    return endpoint.check({"DPoP": create_proof(key, "POST", REVOKE_URL, now=NOW)}, now=NOW).proof


def test_unknown_or_invalid_token_is_not_an_error() -> None:
    """RFC 7009 §2.2: answer 200 and revoke nothing."""
    assert authorize_revocation(None, client_id=CLIENT_ID) is False


def test_bearer_token_of_the_client_may_be_revoked(
    make_token: Callable[..., str], jwks: JWKSet
) -> None:
    assert authorize_revocation(_verified(make_token(), jwks), client_id=CLIENT_ID) is True


def test_rfc7009_s2_1_token_of_another_client_is_refused(
    make_token: Callable[..., str], jwks: JWKSet
) -> None:
    with pytest.raises(UnauthorizedClient) as info:
        authorize_revocation(_verified(make_token(), jwks), client_id="someone-else")
    err = info.value
    assert (err.error, err.status_code) == ("unauthorized_client", 400)
    assert "WWW-Authenticate" not in err.headers
    assert err.json_body()["error"] == "unauthorized_client"


def test_dpop_bound_token_needs_a_proof_from_its_key(
    make_token: Callable[..., str], jwks: JWKSet, holder_key: PrivateKey
) -> None:
    token = _verified(make_token(jkt=jwk_thumbprint(holder_key)), jwks)
    assert authorize_revocation(token, client_id=CLIENT_ID, proof=_proof(holder_key)) is True
    # a thief holding the token but not the key: no proof, or a proof from its own key
    with pytest.raises(InvalidDPoPProof) as missing:
        authorize_revocation(token, client_id=CLIENT_ID)
    assert missing.value.check == "dpop_header"
    assert missing.value.status_code == 400  # rendered for a token-style endpoint
    with pytest.raises(InvalidDPoPProof) as wrong:
        authorize_revocation(token, client_id=CLIENT_ID, proof=_proof(generate_key("ES256")))
    assert wrong.value.check == "cnf.jkt"
    assert wrong.value.details["claimed"] == jwk_thumbprint(holder_key)


def test_certificate_bound_token_needs_its_certificate(
    make_token: Callable[..., str], jwks: JWKSet, client_cert: Any, other_client_cert: Any
) -> None:
    token = _verified(make_token(x5t_s256=client_cert.thumbprint), jwks)
    assert authorize_revocation(token, client_id=CLIENT_ID, client_cert=client_cert.cert)
    assert authorize_revocation(
        token, client_id=CLIENT_ID, client_cert_thumbprint=client_cert.thumbprint
    )
    with pytest.raises(InvalidToken):
        authorize_revocation(token, client_id=CLIENT_ID)
    with pytest.raises(InvalidToken):
        authorize_revocation(token, client_id=CLIENT_ID, client_cert=other_client_cert.cert)
    with pytest.raises(InvalidRequest):
        authorize_revocation(token, client_id=CLIENT_ID, client_cert_thumbprint="nope")
    with pytest.raises(ValueError, match="not both"):
        authorize_revocation(token, client_id=CLIENT_ID, client_cert=client_cert.cert,
                             client_cert_thumbprint=client_cert.thumbprint)  # fmt: skip


def test_token_bound_both_ways_needs_both(
    make_token: Callable[..., str], jwks: JWKSet, holder_key: PrivateKey, client_cert: Any
) -> None:
    token = _verified(
        make_token(jkt=jwk_thumbprint(holder_key), x5t_s256=client_cert.thumbprint), jwks
    )
    proof = _proof(holder_key)
    check_holder(token, proof=proof, client_cert=client_cert.cert)
    with pytest.raises(InvalidToken):
        check_holder(token, proof=proof)
    with pytest.raises(InvalidDPoPProof):
        check_holder(token, proof=None, client_cert=client_cert.cert)


def test_client_id_must_be_given() -> None:
    with pytest.raises(ValueError, match="client_id"):
        authorize_revocation(None, client_id="")


def test_revocation_endpoint_flow_records_the_proof_after_client_auth(
    make_token: Callable[..., str], jwks: JWKSet, holder_key: PrivateKey
) -> None:
    """The documented flow: the proof's jti is recorded once the client is known, so a
    replayed revocation proof is refused."""
    cache = MemoryReplayCache(max_entries=10, max_per_owner=5)
    endpoint = TokenEndpoint(REVOKE_URL, replay_cache=cache)
    headers = {"DPoP": create_proof(holder_key, "POST", REVOKE_URL, now=NOW)}
    checked = endpoint.check(headers, now=NOW)
    endpoint.record(checked, client_id=CLIENT_ID, now=NOW)
    token = _verified(make_token(jkt=jwk_thumbprint(holder_key)), jwks)
    assert authorize_revocation(token, client_id=CLIENT_ID, proof=checked.proof)
    assert cache.owner_count(CLIENT_ID, now=NOW) == 1
