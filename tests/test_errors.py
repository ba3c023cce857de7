"""tokenlib.errors: RFC codes and statuses, WWW-Authenticate (RFC 6750 §3, RFC 9449 §7.1),
quoting safety, safe ``str()`` and the explain view."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenlib import errors
from tokenlib.bearer import Issuer, verify_access_token
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
from tokenlib.jwks import JWKSet

# RFC 6750 §3: error_description = *( %x20-21 / %x23-5B / %x5D-7E )
_QUOTED_SAFE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
_PARAM = re.compile(r'([a-z_]+)="([^"]*)"')


@pytest.mark.parametrize(
    ("cls", "code", "status"),
    [
        (InvalidRequest, "invalid_request", 400),
        (MissingToken, "invalid_request", 401),
        (InvalidToken, "invalid_token", 401),
        (InsufficientScope, "insufficient_scope", 403),
        (InvalidDPoPProof, "invalid_dpop_proof", 401),
        (ReplayDetected, "invalid_dpop_proof", 401),
        (UseDPoPNonce, "use_dpop_nonce", 401),
        (ReplayStateUnavailable, "temporarily_unavailable", 503),
    ],
)
def test_codes_and_statuses(cls: type[TokenError], code: str, status: int) -> None:
    err = cls("what went wrong")
    assert isinstance(err, TokenError)
    assert err.error == code
    assert err.status_code == status
    assert err.json_body() == {"error": code, "error_description": "what went wrong"}


def test_every_public_error_is_a_token_error() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), TokenError)


def test_rfc6750_section3_examples() -> None:
    # RFC 6750 §3: the two example challenges, verbatim.
    missing = MissingToken("no credentials", realm="example")
    assert missing.www_authenticate == 'Bearer realm="example"'
    expired = InvalidToken("The access token expired", realm="example")
    assert (
        expired.www_authenticate == 'Bearer realm="example", error="invalid_token", '
        'error_description="The access token expired"'
    )


def test_rfc9449_section7_1_example() -> None:
    # RFC 9449 §7.1 (Figure 15): a DPoP challenge advertising algs.
    err = InvalidToken("Invalid DPoP key binding").with_context(scheme="DPoP", algs=["ES256"])
    assert (
        err.www_authenticate
        == 'DPoP error="invalid_token", error_description="Invalid DPoP key binding", '
        'algs="ES256"'
    )


def test_rfc9449_section9_nonce_challenge() -> None:
    # RFC 9449 §9 (Figure 18): use_dpop_nonce at a resource server with a fresh nonce.
    err = UseDPoPNonce(
        "Resource server requires nonce in DPoP proof",
        headers={"DPoP-Nonce": "eyJ7S_zG.eyJH0-Z.HX4w-7v"},
    )
    assert err.status_code == 401
    assert err.nonce == "eyJ7S_zG.eyJH0-Z.HX4w-7v"
    assert err.headers["DPoP-Nonce"] == "eyJ7S_zG.eyJH0-Z.HX4w-7v"
    assert err.headers["WWW-Authenticate"] == (
        'DPoP error="use_dpop_nonce", '
        'error_description="Resource server requires nonce in DPoP proof"'
    )


def test_missing_token_challenge_has_no_error_but_names_algs() -> None:
    err = MissingToken("no credentials", scheme="DPoP", algs=("ES256", "EdDSA"))
    assert err.www_authenticate == 'DPoP algs="ES256 EdDSA"'
    assert MissingToken("none").www_authenticate == "Bearer"


def test_bearer_challenge_never_carries_algs() -> None:
    err = InvalidToken("bad", algs=("ES256",))
    assert "algs" not in err.www_authenticate


def test_extra_challenges_are_appended() -> None:
    err = InvalidToken("expired").with_context(
        realm="api", extra_challenges=['DPoP realm="api", algs="ES256"']
    )
    assert err.www_authenticate == (
        'Bearer realm="api", error="invalid_token", error_description="expired", '
        'DPoP realm="api", algs="ES256"'
    )


def test_headers_resource_vs_token_endpoint() -> None:
    err = InvalidDPoPProof("bad proof")
    assert err.headers["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    assert err.headers["Cache-Control"] == "no-store"
    same = err.with_context(endpoint="token")
    assert same is err
    assert err.status_code == 400  # RFC 9449 §5: 400 at the token endpoint
    assert "WWW-Authenticate" not in err.headers
    with pytest.raises(ValueError, match="endpoint"):
        err.with_context(endpoint="elsewhere")


def test_replay_state_unavailable_fails_closed_with_retry_after() -> None:
    err = ReplayStateUnavailable("redis down")
    assert err.status_code == 503
    assert err.headers["Retry-After"] == "1"
    assert "WWW-Authenticate" not in err.headers


def test_check_property_and_explain() -> None:
    err = InvalidToken(
        "the access token has expired",
        details={"check": "exp", "exp": 10, "now": 20, "rfc": "RFC 7519 §4.1.4"},
    )
    assert err.check == "exp"
    text = err.explain()
    assert text.splitlines()[0] == "InvalidToken [invalid_token, HTTP 401]"
    assert "the access token has expired" in text
    assert re.search(r"check\s+: exp", text)
    assert re.search(r"now\s+: 20", text)
    assert InvalidToken("x").check is None
    assert InvalidToken("x", details={"check": 3}).check is None


@pytest.mark.parametrize(
    "description",
    [
        'quote " inside',
        "back\\slash",
        "new\r\nline: injected: header",
        "non-ascii é ✓",
        "x" * 500,
        "\x00\x7f",
    ],
)
def test_description_is_quoted_safely(description: str) -> None:
    header = InvalidToken(description).www_authenticate
    assert "\r" not in header
    assert "\n" not in header
    params = dict(_PARAM.findall(header))
    assert _QUOTED_SAFE.fullmatch(params["error_description"])
    assert len(params["error_description"]) <= 200


@given(st.text(max_size=300), st.text(max_size=40))
def test_challenge_grammar_holds_for_any_text(description: str, realm: str) -> None:
    header = InvalidToken(description, realm=realm).www_authenticate
    match = re.fullmatch(
        r'Bearer realm="([^"]*)", error="invalid_token", error_description="([^"]*)"', header
    )
    assert match is not None
    assert _QUOTED_SAFE.fullmatch(match.group(1))
    assert _QUOTED_SAFE.fullmatch(match.group(2))


def test_str_and_repr() -> None:
    err = InvalidToken("the signature is invalid")
    assert str(err) == "invalid_token: the signature is invalid"
    assert repr(err) == (
        "InvalidToken(error='invalid_token', description='the signature is invalid')"
    )


def _tamper_signature(token: str) -> str:
    head, body, sig = token.split(".")
    return f"{head}.{body}.{'A' * len(sig)}"


@pytest.mark.parametrize(
    ("mutate", "verify_kwargs", "check"),
    [
        (lambda t: t, {"now": 1_700_000_000 + 10_000}, "exp"),
        (_tamper_signature, {}, "signature"),
        (lambda t: t, {"audience": "https://other.example"}, "aud"),
        (lambda t: t, {"issuer": "https://evil.example"}, "iss"),
        (lambda t: t + "x", {}, "syntax"),
        (lambda t: t, {"algorithms": ("EdDSA",)}, "alg"),
    ],
)
def test_errors_never_contain_the_token(
    issuer: Issuer,
    jwks: JWKSet,
    make_token: Callable[..., str],
    mutate: Callable[[str], str],
    verify_kwargs: dict[str, object],
    check: str,
) -> None:
    token = mutate(make_token())
    kwargs: dict[str, object] = {
        "issuer": issuer.issuer,
        "audience": "https://rs.example.com",
        "jwks": jwks,
        "now": 1_700_000_000,
    }
    kwargs.update(verify_kwargs)
    with pytest.raises(InvalidToken) as info:
        verify_access_token(token, **kwargs)  # type: ignore[arg-type]
    err = info.value
    assert err.check == check
    _, body, sig = token.split(".")[:3]
    surfaces = [
        str(err),
        repr(err),
        err.explain(),
        err.www_authenticate,
        repr(err.headers),
        repr(err.json_body()),
        repr(err.details),
    ]
    for surface in surfaces:
        assert token not in surface
        assert body not in surface
        assert sig not in surface


def test_insufficient_scope_challenge_names_the_required_scope() -> None:
    err = InsufficientScope("missing scope", details={"check": "scope", "required": ["b", "a"]})
    assert err.status_code == 403
    assert err.www_authenticate == (
        'Bearer error="insufficient_scope", error_description="missing scope", scope="a b"'
    )
