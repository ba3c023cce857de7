"""The lab authorization server over real HTTPS on loopback (httpx against uvicorn)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tokenlib.bearer import verify_access_token
from tokenlib.dpop import create_proof
from tokenlib.integrations.httpx import CLIENT_ASSERTION_TYPE, TokenClient, client_assertion
from tokenlib.jwk import generate_key, jwk_thumbprint, public_jwk
from tokenlib.lab._serve import ServedApp
from tokenlib.lab.authserver import ClientRegistration, LabAuthorizationServer
from tokenlib.lab.pki import LabPKI

from .conftest import SelfSigned, server_context

pytestmark = pytest.mark.slow

RS = "https://rs.lab.invalid"
SVC_KEY = generate_key("ES256")
DPOP_KEY = generate_key("ES256")
OTHER_KEY = generate_key("ES256")


class Clock:
    """A settable clock for the server (tests never sleep)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def lab_as(
    pki: LabPKI, self_signed: SelfSigned, clock: Clock
) -> Iterator[tuple[LabAuthorizationServer, str]]:
    server = LabAuthorizationServer(
        audience=[RS, "https://other.lab.invalid"],
        clients=[
            ClientRegistration(
                "svc",
                jwks={"keys": [{**public_jwk(SVC_KEY), "kid": "k1"}]},
                scopes=frozenset({"read", "write"}),
                refresh_tokens=True,
            ),
            ClientRegistration(
                "alice", auth_method="tls_client_auth", subject_dn="CN=alice,O=tokenlib lab",
                scopes=frozenset({"read"}),
            ),
            ClientRegistration(
                "carol", auth_method="self_signed_tls_client_auth",
                cert_thumbprints=frozenset({self_signed.thumbprint}), scopes=frozenset({"read"}),
            ),
            ClientRegistration(
                "spa", auth_method="none", scopes=frozenset({"read"}), binding="dpop"
            ),
            ClientRegistration(
                "dpop-only", jwks={"keys": [public_jwk(OTHER_KEY)]}, binding="dpop",
                scopes=frozenset({"read"}),
            ),
        ],
        clock=clock,
    )  # fmt: skip
    served = ServedApp(server, ssl_context=server_context(pki, extra_ca=self_signed.pem))
    served.start()
    server.set_issuer(served.url)
    try:
        yield server, served.url
    finally:
        served.stop()


@pytest.fixture
def http(pki: LabPKI) -> Iterator[httpx.Client]:
    with httpx.Client(verify=pki.client_context()) as client:
        yield client


def _assertion(server: LabAuthorizationServer, clock: Clock, **overrides: Any) -> dict[str, str]:
    return {
        "client_id": "svc",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": client_assertion(
            SVC_KEY,
            client_id="svc",
            token_endpoint=overrides.pop("aud", server.token_endpoint),
            kid="k1",
            now=overrides.pop("iat", clock.now),
            lifetime=overrides.pop("lifetime", 60),
        ),
    }


def test_metadata_and_jwks(lab_as: tuple[LabAuthorizationServer, str], http: httpx.Client) -> None:
    _, base = lab_as
    meta = http.get(f"{base}/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == base
    assert meta["token_endpoint"] == f"{base}/token"
    assert meta["tls_client_certificate_bound_access_tokens"] is True
    assert "ES256" in meta["dpop_signing_alg_values_supported"]
    assert {"private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"} <= set(
        meta["token_endpoint_auth_methods_supported"]
    )
    jwks = http.get(meta["jwks_uri"]).json()
    assert all("d" not in key for key in jwks["keys"])


def test_private_key_jwt_with_dpop_issues_a_dpop_bound_token(
    lab_as: tuple[LabAuthorizationServer, str], http: httpx.Client, clock: Clock
) -> None:
    server, base = lab_as
    with TokenClient(
        server.token_endpoint, client_id="svc", client_key=SVC_KEY, client_kid="k1",
        dpop_key=DPOP_KEY, http=http, clock=clock,
    ) as client:  # fmt: skip
        token = client.client_credentials(scope="read")
    assert token.token_type == "DPoP"
    assert token.scope == {"read"}
    assert token.refresh_token
    at = verify_access_token(
        token.access_token, issuer=base, audience=RS, jwks=server.jwks(), now=clock.now
    )
    assert at.jkt == jwk_thumbprint(DPOP_KEY)
    assert at.binding == "dpop"
    assert at.client_id == "svc"


def test_nonce_demand_is_answered_with_one_retry(
    pki: LabPKI, http: httpx.Client, clock: Clock
) -> None:
    server = LabAuthorizationServer(
        audience=RS,
        clients=[ClientRegistration("svc", jwks={"keys": [public_jwk(SVC_KEY)]})],
        require_nonce=True,
        clock=clock,
    )
    with ServedApp(server, ssl_context=server_context(pki)) as served:
        server.set_issuer(served.url)
        seen: list[int] = []
        http.event_hooks["response"] = [lambda r: seen.append(r.status_code)]
        with TokenClient(
            server.token_endpoint, client_id="svc", client_key=SVC_KEY, dpop_key=DPOP_KEY,
            http=http, clock=clock,
        ) as client:  # fmt: skip
            assert client.client_credentials().is_dpop
            assert seen == [400, 200]
            # The nonce is remembered for the origin: the next request needs no retry.
            assert client.client_credentials().is_dpop
            assert seen == [400, 200, 200]
        # Without DPoP-aware retry the raw answer is RFC 9449 §8's.
        form = _assertion(server, clock) | {"grant_type": "client_credentials"}
        proof = create_proof(DPOP_KEY, "POST", server.token_endpoint, now=clock.now)
        raw = http.post(server.token_endpoint, data=form, headers={"DPoP": proof})
        assert raw.status_code == 400
        assert raw.json()["error"] == "use_dpop_nonce"
        assert raw.headers["DPoP-Nonce"]
        assert raw.headers["Cache-Control"] == "no-store"
        assert "WWW-Authenticate" not in raw.headers


def test_tls_client_auth_issues_a_certificate_bound_token(
    lab_as: tuple[LabAuthorizationServer, str], pki: LabPKI, clock: Clock
) -> None:
    server, base = lab_as
    with httpx.Client(verify=pki.client_context("alice")) as http:
        token = TokenClient(
            server.token_endpoint, client_id="alice", http=http
        ).client_credentials()
    assert token.token_type == "Bearer"
    at = verify_access_token(
        token.access_token, issuer=base, audience=RS, jwks=server.jwks(), now=clock.now
    )
    assert at.x5t_s256 == pki.clients["alice"].x5t_s256
    assert at.binding == "mtls"


def test_self_signed_tls_client_auth(
    lab_as: tuple[LabAuthorizationServer, str], pki: LabPKI, self_signed: SelfSigned, clock: Clock
) -> None:
    server, base = lab_as
    ctx = pki.client_context()
    ctx.load_cert_chain(self_signed.cert_file, self_signed.key_file)
    with httpx.Client(verify=ctx) as http:
        token = TokenClient(
            server.token_endpoint, client_id="carol", http=http
        ).client_credentials()
    at = verify_access_token(
        token.access_token, issuer=base, audience=RS, jwks=server.jwks(), now=clock.now
    )
    assert at.x5t_s256 == self_signed.thumbprint


def _post(http: httpx.Client, url: str, form: dict[str, str], **kw: Any) -> httpx.Response:
    return http.post(url, data=form, **kw)


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        ("wrong_aud", 401, "invalid_client"),
        ("expired", 401, "invalid_client"),
        ("too_long_lived", 401, "invalid_client"),
        ("replayed_assertion", 401, "invalid_client"),
        ("unknown_client", 401, "invalid_client"),
        ("bad_grant_type", 400, "unsupported_grant_type"),
        ("invalid_scope", 400, "invalid_scope"),
        ("invalid_target", 400, "invalid_target"),
        ("repeated_param", 400, "invalid_request"),
        ("proof_wrong_htu", 400, "invalid_dpop_proof"),
        ("two_proofs", 400, "invalid_dpop_proof"),
        ("dpop_required", 400, "invalid_dpop_proof"),
        ("no_client_cert", 401, "invalid_client"),
        ("wrong_subject_dn", 401, "invalid_client"),
        ("public_client_credentials", 400, "unauthorized_client"),
    ],
)
def test_token_endpoint_refusals(
    lab_as: tuple[LabAuthorizationServer, str],
    pki: LabPKI,
    clock: Clock,
    case: str,
    status: int,
    error: str,
) -> None:
    server, _ = lab_as
    url = server.token_endpoint
    form = _assertion(server, clock) | {"grant_type": "client_credentials"}
    headers: dict[str, Any] = {}
    identity: str | None = None
    if case == "wrong_aud":
        form = _assertion(server, clock, aud="https://elsewhere.invalid/token") | {
            "grant_type": "client_credentials"
        }
    elif case == "expired":
        form = _assertion(server, clock, iat=clock.now - 120) | {"grant_type": "client_credentials"}
    elif case == "too_long_lived":
        form = _assertion(server, clock, lifetime=3600) | {"grant_type": "client_credentials"}
    elif case == "unknown_client":
        form = {"grant_type": "client_credentials", "client_id": "nobody"}
    elif case == "bad_grant_type":
        form["grant_type"] = "password"
    elif case == "invalid_scope":
        form["scope"] = "read admin"
    elif case == "invalid_target":
        form["resource"] = "https://evil.invalid"
    elif case == "proof_wrong_htu":
        headers["DPoP"] = create_proof(
            DPOP_KEY, "POST", url.replace("/token", "/other"), now=clock.now
        )
    elif case == "two_proofs":
        proof = create_proof(DPOP_KEY, "POST", url, now=clock.now)
        headers = {"headers": [("DPoP", proof), ("DPoP", proof)]}
    elif case == "dpop_required":
        form = {
            "grant_type": "client_credentials",
            "client_id": "dpop-only",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": client_assertion(
                OTHER_KEY, client_id="dpop-only", token_endpoint=url, now=clock.now
            ),
        }
    elif case == "no_client_cert":
        form = {"grant_type": "client_credentials", "client_id": "alice"}
    elif case == "wrong_subject_dn":
        form = {"grant_type": "client_credentials", "client_id": "alice"}
        identity = "bob"
    elif case == "public_client_credentials":
        form = {"grant_type": "client_credentials", "client_id": "spa"}
    with httpx.Client(verify=pki.client_context(identity)) as http:
        if case == "repeated_param":
            body = httpx.QueryParams(form).merge({}).add("scope", "read").add("scope", "write")
            response = http.post(
                url,
                content=str(body),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        elif case == "two_proofs":
            response = http.post(url, data=form, headers=headers["headers"])
        else:
            response = http.post(url, data=form, headers=headers)
        if case == "replayed_assertion":
            assert response.status_code == 200
            response = http.post(url, data=form)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert response.headers["Cache-Control"] == "no-store"


def test_public_client_refresh_token_is_bound_to_the_dpop_key(
    lab_as: tuple[LabAuthorizationServer, str], http: httpx.Client, clock: Clock
) -> None:
    server, base = lab_as
    refresh = server.mint_refresh_token("spa", scope=["read"], jkt=jwk_thumbprint(DPOP_KEY))
    thief = TokenClient(
        server.token_endpoint, client_id="spa", dpop_key=OTHER_KEY, http=http, clock=clock
    )
    # The grant is bound to another key: invalid_grant (RFC 6749 §5.2), as
    # tokenlib.token_endpoint.check_refresh_token_binding answers (RFC 9449 §5).
    with pytest.raises(Exception, match="invalid_grant") as info:
        thief.refresh(refresh)
    assert getattr(info.value, "status_code", None) == 400
    no_proof = http.post(
        server.token_endpoint,
        data={"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "spa"},
    )
    assert no_proof.json()["error"] == "invalid_grant"
    owner = TokenClient(
        server.token_endpoint, client_id="spa", dpop_key=DPOP_KEY, http=http, clock=clock
    )
    first = owner.refresh(refresh)
    assert first.is_dpop
    assert first.refresh_token
    assert first.refresh_token != refresh
    at = verify_access_token(
        first.access_token, issuer=base, audience=RS, jwks=server.jwks(), now=clock.now
    )
    assert at.jkt == jwk_thumbprint(DPOP_KEY)
    with pytest.raises(Exception, match="invalid_grant"):
        owner.refresh(refresh)  # rotated: the old one is gone
    assert owner.refresh(first.refresh_token).is_dpop


def test_refresh_token_expires(
    lab_as: tuple[LabAuthorizationServer, str], http: httpx.Client, clock: Clock
) -> None:
    server, _ = lab_as
    refresh = server.mint_refresh_token("spa", scope=["read"], jkt=jwk_thumbprint(DPOP_KEY))
    owner = TokenClient(
        server.token_endpoint, client_id="spa", dpop_key=DPOP_KEY, http=http, clock=clock
    )
    saved = clock.now
    clock.now += server.refresh_token_lifetime + 1
    try:
        with pytest.raises(Exception, match="invalid_grant"):
            owner.refresh(refresh)
    finally:
        clock.now = saved


def test_introspection_keeps_cnf(
    lab_as: tuple[LabAuthorizationServer, str], http: httpx.Client, clock: Clock
) -> None:
    server, base = lab_as
    client = TokenClient(
        server.token_endpoint, client_id="svc", client_key=SVC_KEY, client_kid="k1",
        dpop_key=DPOP_KEY, http=http, clock=clock,
    )  # fmt: skip
    token = client.client_credentials(scope="read")
    url = f"{base}/introspect"
    active = http.post(url, data=_assertion(server, clock) | {"token": token.access_token}).json()
    assert active["active"] is True
    assert active["token_type"] == "DPoP"
    assert active["cnf"] == {"jkt": jwk_thumbprint(DPOP_KEY)}
    assert active["client_id"] == "svc"
    garbage = http.post(url, data=_assertion(server, clock) | {"token": "not-a-token"}).json()
    assert garbage == {"active": False}
    anonymous = http.post(url, data={"token": token.access_token, "client_id": "spa"})
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "invalid_client")


def test_unauthenticated_requests_add_no_replay_entries(
    lab_as: tuple[LabAuthorizationServer, str], http: httpx.Client, clock: Clock
) -> None:
    """Issue 11: the lab AS recorded a proof's jti before authenticating the client
    (3,000 refused requests added 3,000 entries). Bounded count: 150 requests, each with
    a fresh valid proof from the attacker's own key, all invalid_client; 0 entries."""
    server, _ = lab_as
    url = server.token_endpoint
    attacker = generate_key("ES256")
    before = len(server._dpop_replay)
    statuses = set()
    for _ in range(150):
        response = _post(
            http, url, {"grant_type": "client_credentials", "client_id": "nobody"},
            headers={"DPoP": create_proof(attacker, "POST", url, now=clock.now)},
        )  # fmt: skip
        statuses.add((response.status_code, response.json()["error"]))
    assert statuses == {(401, "invalid_client")}
    assert len(server._dpop_replay) == before
    # an authenticated request with a proof is still recorded (and a replay refused)
    proof = create_proof(DPOP_KEY, "POST", url, now=clock.now)
    form = _assertion(server, clock) | {"grant_type": "client_credentials"}
    assert _post(http, url, form, headers={"DPoP": proof}).status_code == 200
    assert len(server._dpop_replay) == before + 1
    again = _post(
        http, url, _assertion(server, clock) | {"grant_type": "client_credentials"},
        headers={"DPoP": proof},
    )  # fmt: skip
    assert (again.status_code, again.json()["error"]) == (400, "invalid_dpop_proof")
