"""tokenlib.claims: RFC 9068 §2.2 required claims, scope and cnf parsing, AccessToken."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from _vectors import case
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenlib.claims import (
    REQUIRED_CLAIMS,
    AccessToken,
    is_sha256_b64url,
    parse_access_token_claims,
    parse_cnf,
    parse_scope,
)
from tokenlib.errors import InvalidToken

JKT = case("rfc7638", "rfc9449-example-ec-p256")["thumbprint"]
X5T = case("rfc9440", "rfc9440-appA-client-cert")["x5t_s256_computed"]
HEADER = {"alg": "ES256", "typ": "at+jwt", "kid": "k1"}


def _claims(**override: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": "https://as.example.com",
        "exp": 1_700_000_300,
        "aud": "https://rs.example.com",
        "sub": "alice",
        "client_id": "s6BhdRkqt3",
        "iat": 1_700_000_000,
        "jti": "dbe39bf3a3ba4238a513f51d6e1691c4",
        "scope": "openid read",
    }
    for name, value in override.items():
        if value is _DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


_DROP = object()


def test_parse_valid_claims() -> None:
    token = parse_access_token_claims(HEADER, _claims())
    assert token.issuer == "https://as.example.com"
    assert token.subject == "alice"
    assert token.client_id == "s6BhdRkqt3"
    assert token.audience == ("https://rs.example.com",)
    assert token.scopes == frozenset({"openid", "read"})
    assert (token.expires_at, token.issued_at) == (1_700_000_300, 1_700_000_000)
    assert token.jti == "dbe39bf3a3ba4238a513f51d6e1691c4"
    assert token.jkt is None
    assert token.x5t_s256 is None
    assert token.not_before is None
    assert token.binding == "bearer"
    assert token.cnf is None
    assert token.header == HEADER


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_each_required_claim_missing(claim: str) -> None:
    with pytest.raises(InvalidToken) as info:
        parse_access_token_claims(HEADER, _claims(**{claim: _DROP}))
    assert info.value.error == "invalid_token"
    assert info.value.check == claim
    assert info.value.details["problem"] == "missing"


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("iss", 1),
        ("iss", ""),
        ("iss", None),
        ("iss", ["https://as.example.com"]),
        ("sub", 42),
        ("sub", ""),
        ("client_id", {"id": "x"}),
        ("client_id", ""),
        ("jti", 12345),
        ("jti", ""),
        ("exp", "1700000300"),
        ("exp", True),
        ("exp", None),
        ("exp", float("nan")),
        ("exp", float("inf")),
        ("iat", "now"),
        ("iat", False),
        ("nbf", "soon"),
        ("aud", 5),
        ("aud", ""),
        ("aud", []),
        ("aud", ["ok", 5]),
        ("aud", ["ok", ""]),
        ("aud", {"aud": "x"}),
        ("scope", ["read", "write"]),
        ("scope", 7),
        ("scope", "read  write"),
        ("scope", " read"),
        ("scope", "read "),
        ("scope", 'read "quoted"'),
        ("scope", "back\\slash"),
        ("scope", "tab\tsep"),
        ("scope", "ünïcode"),
    ],
)
def test_claim_types(claim: str, value: Any) -> None:
    with pytest.raises(InvalidToken) as info:
        parse_access_token_claims(HEADER, _claims(**{claim: value}))
    assert info.value.check == claim
    assert info.value.details["problem"] in ("type", "syntax")


@pytest.mark.parametrize(
    ("aud", "expected"),
    [
        ("https://rs.example.com", ("https://rs.example.com",)),
        (["a", "b"], ("a", "b")),
        (["only"], ("only",)),
    ],
)
def test_audience_forms(aud: Any, expected: tuple[str, ...]) -> None:
    assert parse_access_token_claims(HEADER, _claims(aud=aud)).audience == expected


def test_numeric_dates_may_be_fractional() -> None:
    token = parse_access_token_claims(HEADER, _claims(exp=1_700_000_300.9, iat=1.5e9, nbf=10.2))
    assert token.expires_at == 1_700_000_300
    assert token.issued_at == 1_500_000_000
    assert token.not_before == 10


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", frozenset()),
        ("read", frozenset({"read"})),
        ("read write read", frozenset({"read", "write"})),
        ("urn:x:y https://api/x!#$%&'()*+,-./:;<=>?@[]^_`{|}~", None),
    ],
)
def test_parse_scope(value: str, expected: frozenset[str] | None) -> None:
    scopes = parse_scope(value)
    assert scopes == (expected if expected is not None else frozenset(value.split(" ")))


def test_missing_scope_is_no_scopes() -> None:
    token = parse_access_token_claims(HEADER, _claims(scope=_DROP))
    assert token.scopes == frozenset()
    assert not token.has_scopes("read")
    assert token.has_scopes()


# --- cnf -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cnf", "jkt", "x5t", "binding"),
    [
        ({"jkt": JKT}, JKT, None, "dpop"),
        ({"x5t#S256": X5T}, None, X5T, "mtls"),
        ({"jkt": JKT, "x5t#S256": X5T}, JKT, X5T, "dpop+mtls"),
        ({"jkt": JKT, "kc-jkt-type": "DPoP"}, JKT, None, "dpop"),  # Keycloak extra member
        ({"x5t#S256": X5T, "x5t": "ignored", "future": {"a": 1}}, None, X5T, "mtls"),
    ],
)
def test_cnf_accepted(cnf: dict[str, Any], jkt: str | None, x5t: str | None, binding: str) -> None:
    token = parse_access_token_claims(HEADER, _claims(cnf=cnf))
    assert (token.jkt, token.x5t_s256, token.binding) == (jkt, x5t, binding)
    assert token.cnf == cnf  # unknown members preserved


def test_rfc8705_example_cnf() -> None:
    # RFC 8705 §3.1: the example certificate-bound claims' cnf. Its last character ('2')
    # sets padding bits, so it is not what an encoder emits; it still parses (and can
    # never match a real certificate - see test_mtls).
    claims = case("rfc9440", "rfc8705-3.1-cnf-example")["claims"]
    assert parse_cnf(claims["cnf"]) == (None, "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2")
    token = parse_access_token_claims(HEADER, _claims(cnf=claims["cnf"]))
    assert token.binding == "mtls"


@pytest.mark.parametrize(
    ("cnf", "problem"),
    [
        pytest.param("jkt", "type", id="string"),
        pytest.param([JKT], "type", id="array"),
        pytest.param(None, "type", id="null"),
        pytest.param({}, "unsupported", id="empty"),
        pytest.param({"jwk": {"kty": "EC"}}, "unsupported", id="only-jwk-method"),
        pytest.param({"kc-jkt-type": "DPoP"}, "unsupported", id="only-unknown"),
        pytest.param({"jkt": JKT[:-1]}, "syntax", id="jkt-42-chars"),
        pytest.param({"jkt": JKT + "A"}, "syntax", id="jkt-44-chars"),
        pytest.param({"jkt": JKT + "="}, "syntax", id="jkt-padded"),
        pytest.param({"jkt": JKT[:-1] + "+"}, "syntax", id="jkt-std-base64"),
        pytest.param({"jkt": 42}, "syntax", id="jkt-number"),
        pytest.param({"jkt": None}, "syntax", id="jkt-null"),
        pytest.param({"jkt": ""}, "syntax", id="jkt-empty"),
        pytest.param({"x5t#S256": X5T[:20]}, "syntax", id="x5t-short"),
        pytest.param({"x5t#S256": ["x"]}, "syntax", id="x5t-array"),
        pytest.param({"jkt": JKT, "x5t#S256": "bad"}, "syntax", id="good-jkt-bad-x5t"),
        pytest.param(
            {"x5t#S256": "v68ffgcPn6jdYpBfFY2nP4ShE2Yk+6/Mk5PI9yh6aes"},
            "syntax",
            id="x5t-std-base64",
        ),
    ],
)
def test_cnf_refused(cnf: Any, problem: str) -> None:
    with pytest.raises(InvalidToken) as info:
        parse_access_token_claims(HEADER, _claims(cnf=cnf))
    assert info.value.error == "invalid_token"
    assert info.value.check == "cnf"
    assert info.value.details["problem"] == problem


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (JKT, True),
        (X5T, True),
        ("A" * 43, True),
        ("A" * 42 + "B", True),  # stray padding bits: tolerated, can never match (RFC 8705 ex.)
        ("A" * 42 + "=", False),
        ("A" * 42, False),
        ("A" * 44, False),
        (b"A" * 43, False),
        (None, False),
    ],
)
def test_is_sha256_b64url(value: object, ok: bool) -> None:
    assert is_sha256_b64url(value) is ok


def test_access_token_is_frozen_and_repr_is_short() -> None:
    token = parse_access_token_claims(HEADER, _claims(cnf={"jkt": JKT}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        token.subject = "mallory"  # type: ignore[misc]
    text = repr(token)
    assert "binding='dpop'" in text
    assert "scope" not in text
    assert not hasattr(token, "__dict__")  # slots


def test_access_token_can_be_built_directly() -> None:
    token = AccessToken(
        header={},
        claims={},
        issuer="i",
        subject="s",
        client_id="c",
        audience=("a",),
        scopes=frozenset(),
        expires_at=2,
        issued_at=1,
        jti="j",
        x5t_s256=X5T,
    )
    assert token.binding == "mtls"
    assert token.cnf is None


# --- fuzz: any JSON claims set gives an AccessToken or an InvalidToken ------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*REQUIRED_CLAIMS, "scope", "cnf", "nbf", "x"]), _JSON))
def test_fuzz_claims_sets(overrides: dict[str, Any]) -> None:
    try:
        token = parse_access_token_claims(HEADER, _claims(**overrides))
    except InvalidToken as exc:
        refused: InvalidToken = exc
    else:
        assert token.binding in ("bearer", "dpop", "mtls", "dpop+mtls")
        assert isinstance(token.expires_at, int)
        return
    assert refused.check in (*REQUIRED_CLAIMS, "scope", "cnf", "nbf")


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_numeric_date_beyond_a_float_is_refused(claim: str, value: int) -> None:
    with pytest.raises(InvalidToken) as info:  # not an OverflowError
        parse_access_token_claims(HEADER, _claims(**{claim: value}))
    assert info.value.check == claim
    assert info.value.details["problem"] == "type"


@pytest.mark.parametrize("value", [2**62, -(2**62), 2**70, 1e300])
def test_large_but_representable_numeric_dates_are_kept(value: float) -> None:
    token = parse_access_token_claims(HEADER, _claims(exp=value))
    assert token.expires_at == int(value)


def test_result_equals_a_normally_built_access_token() -> None:
    # build_access_token fills the frozen dataclass's slots directly (hot path); the
    # object must be the one the generated __init__ would make.
    claims = _claims(scope="read write", cnf={"jkt": JKT}, nbf=1_699_999_995)
    token = parse_access_token_claims(HEADER, claims)
    expected = AccessToken(
        header=dict(HEADER),
        claims=dict(claims),
        issuer=claims["iss"],
        subject=claims["sub"],
        client_id=claims["client_id"],
        audience=(claims["aud"],),
        scopes=frozenset({"read", "write"}),
        expires_at=claims["exp"],
        issued_at=claims["iat"],
        jti=claims["jti"],
        jkt=JKT,
        x5t_s256=None,
        not_before=1_699_999_995,
    )
    assert token == expected
    assert dataclasses.astuple(token) == dataclasses.astuple(expected)
