"""tokenlib.mtls: x5t#S256 (RFC 8705 §3.1), the certificate binding check (RFC 8705 §3)
and the RFC 9440 Client-Cert / Client-Cert-Chain fields, with RFC 9440 App. A vectors."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable
from typing import Any

import pytest
from _vectors import case, joined
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenlib import mtls
from tokenlib.bearer import Issuer, verify_access_token
from tokenlib.claims import AccessToken, parse_access_token_claims
from tokenlib.errors import InvalidRequest, InvalidToken
from tokenlib.jwks import JWKSet
from tokenlib.mtls import (
    cert_thumbprint,
    format_client_cert_chain_header,
    format_client_cert_header,
    load_certificate,
    parse_client_cert_chain_header,
    parse_client_cert_header,
    verify_certificate_binding,
)

NOW = 1_700_000_000
AUD = "https://rs.example.com"
RFC9440 = case("rfc9440", "rfc9440-appA-client-cert")
RFC9440_CHAIN = case("rfc9440", "rfc9440-appA-client-cert-chain")
RFC9440_HEADER = joined(RFC9440["header_display"])
RFC9440_CHAIN_HEADER = joined(RFC9440_CHAIN["header_display"])


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _token(x5t: str | None) -> AccessToken:
    claims: dict[str, Any] = {
        "iss": "https://as.example.com",
        "sub": "alice",
        "aud": AUD,
        "client_id": "c",
        "iat": NOW,
        "exp": NOW + 300,
        "jti": "j",
    }
    if x5t is not None:
        claims["cnf"] = {"x5t#S256": x5t}
    return parse_access_token_claims({"alg": "ES256", "typ": "at+jwt"}, claims)


# --- RFC 9440 Appendix A known answers ---------------------------------------------------


def test_rfc9440_client_cert_header_parses_to_the_example_certificate() -> None:
    from_header = parse_client_cert_header(RFC9440_HEADER)
    from_pem = x509.load_pem_x509_certificate(RFC9440["certificate_pem"].encode())
    assert _der(from_header) == _der(from_pem)
    assert from_header.subject.rfc4514_string() == "CN=BC"


def test_rfc9440_x5t_s256_both_directions() -> None:
    # RFC 9440 gives the certificate; the x5t#S256 was computed once (and checked with
    # openssl's SHA-256 fingerprint, recorded in the vector) - recompute it every way.
    expected = RFC9440["x5t_s256_computed"]
    cert = parse_client_cert_header(RFC9440_HEADER)
    pem = RFC9440["certificate_pem"]
    assert cert_thumbprint(cert) == expected
    assert cert_thumbprint(_der(cert)) == expected
    assert cert_thumbprint(pem) == expected
    assert cert_thumbprint(pem.encode()) == expected
    raw = base64.urlsafe_b64decode(expected + "=")
    assert raw.hex() == RFC9440["sha256_hex_openssl"]
    # and the binding check accepts exactly this certificate for a token claiming it
    assert verify_certificate_binding(_token(expected), cert) == expected


def test_rfc9440_format_reproduces_the_example_header() -> None:
    pem = RFC9440["certificate_pem"]
    assert format_client_cert_header(pem) == RFC9440_HEADER
    assert format_client_cert_header(parse_client_cert_header(RFC9440_HEADER)) == RFC9440_HEADER


def test_rfc9440_chain_header_both_directions() -> None:
    chain = parse_client_cert_chain_header(RFC9440_CHAIN_HEADER)
    expected = [
        x509.load_pem_x509_certificate(p.encode()) for p in RFC9440_CHAIN["certificates_pem"]
    ]
    assert [_der(c) for c in chain] == [_der(c) for c in expected]
    assert [c.subject.rfc4514_string() for c in chain] == [
        "CN=LA Intermediate CA,O=Let's Authenticate",
        "CN=Let's Authenticate Root Authority,O=Let's Authenticate,C=US",
    ]
    assert (
        format_client_cert_chain_header(RFC9440_CHAIN["certificates_pem"]) == RFC9440_CHAIN_HEADER
    )
    # the client certificate was issued by the first chain element
    leaf = parse_client_cert_header(RFC9440_HEADER)
    assert leaf.issuer == chain[0].subject


def test_rfc8705_example_thumbprint_can_never_match(client_cert: Any) -> None:
    # RFC 8705 §3.1's example value has non-zero padding bits, so no computed thumbprint
    # (always canonical) can equal it: the check refuses with both values shown.
    example = case("rfc9440", "rfc8705-3.1-cnf-example")["claims"]["cnf"]["x5t#S256"]
    with pytest.raises(InvalidToken) as info:
        verify_certificate_binding(_token(example), client_cert.cert)
    assert info.value.details["claimed"] == example
    assert info.value.details["computed"] == client_cert.thumbprint


# --- cert_thumbprint ------------------------------------------------------------------


def test_thumbprint_of_every_input_form(client_cert: Any) -> None:
    expected = client_cert.thumbprint  # computed in conftest with hashlib directly
    for form in (
        client_cert.cert,
        client_cert.der,
        bytearray(client_cert.der),
        client_cert.pem,
        client_cert.pem.decode(),
        b"\n  " + client_cert.pem,
    ):
        assert cert_thumbprint(form) == expected
    assert len(expected) == 43
    assert "=" not in expected


def test_thumbprints_differ_between_certificates(client_cert: Any, other_client_cert: Any) -> None:
    assert cert_thumbprint(client_cert.cert) != cert_thumbprint(other_client_cert.cert)


@pytest.mark.parametrize(
    "bad",
    [b"", b"not a certificate", b"\x30\x03\x02\x01\x01", "-----BEGIN CERTIFICATE-----\nAAAA\n"],
)
def test_thumbprint_refuses_non_certificates(bad: bytes | str) -> None:
    with pytest.raises(ValueError, match=r"not a (DER|PEM) X\.509 certificate"):
        cert_thumbprint(bad)


def test_non_positive_serial_is_refused_before_parsing() -> None:
    # Found by the fuzz test below: one changed character gives serial -5, which
    # cryptography only warns about (RFC 5280 §4.1.2.2 forbids it); refuse it outright.
    mutated = RFC9440_HEADER[:21] + "+" + RFC9440_HEADER[22:]
    der = base64.b64decode(mutated.strip(":"), validate=True)
    with pytest.raises(ValueError, match="serial number is not positive"):
        cert_thumbprint(der)
    pem = (
        b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
    )
    with pytest.raises(ValueError, match="serial number is not positive"):
        load_certificate(pem)


def test_pem_with_crlf_line_endings(client_cert: Any) -> None:
    pem = client_cert.pem.replace(b"\n", b"\r\n")
    assert cert_thumbprint(pem) == client_cert.thumbprint
    assert cert_thumbprint(pem.decode()) == client_cert.thumbprint


def test_thumbprint_refuses_trailing_data_and_two_pems(client_cert: Any) -> None:
    with pytest.raises(ValueError, match=r"not a DER X\.509 certificate"):
        cert_thumbprint(client_cert.der + b"\x00")
    with pytest.raises(ValueError, match="one PEM certificate, found 2"):
        load_certificate(client_cert.pem + client_cert.pem)
    with pytest.raises(TypeError):
        load_certificate(12345)  # type: ignore[arg-type]


# --- Client-Cert parsing: strict, typed, explained ---------------------------------------


def test_parse_tolerates_ows_missing_padding_and_bytes(client_cert: Any) -> None:
    value = format_client_cert_header(client_cert.cert)
    assert value == ":" + base64.b64encode(client_cert.der).decode() + ":"
    body = value.strip(":").rstrip("=")
    for variant in (value, f"  {value}\t", f":{body}:", value.encode(), [value], (value,)):
        assert _der(parse_client_cert_header(variant)) == client_cert.der


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


_CERT_B64 = RFC9440_HEADER.strip(":")

_BAD_CLIENT_CERT = [
    pytest.param("", "expected ':'", id="empty"),
    pytest.param("   ", "expected ':'", id="blank"),
    pytest.param(_CERT_B64, "expected ':'", id="no-colons"),
    pytest.param(":" + _CERT_B64, "no closing", id="unclosed"),
    pytest.param(
        ":" + _CERT_B64.replace("/", "_") + ":", "outside standard base64", id="base64url-chars"
    ),
    pytest.param(
        ":" + _CERT_B64[:50] + " " + _CERT_B64[50:] + ":",
        "outside standard base64",
        id="inner-space",
    ),
    pytest.param(
        ":" + _CERT_B64[:50] + "\n" + _CERT_B64[50:] + ":",
        "outside standard base64",
        id="inner-newline",
    ),
    pytest.param(":" + _CERT_B64[:-1] + "==:", "not valid base64", id="bad-padding"),
    pytest.param(":" + "=" + _CERT_B64 + ":", "padding", id="leading-padding"),
    pytest.param(":" + _CERT_B64[:-4] + "A:", "not valid base64", id="truncated-quantum"),
    pytest.param("::", "empty", id="empty-bytes"),
    pytest.param(f"{RFC9440_HEADER}, {RFC9440_HEADER}", "list", id="list"),
    pytest.param(f"{RFC9440_HEADER};foo=1", "parameters", id="parameters"),
    pytest.param(f"{RFC9440_HEADER} x", "unexpected", id="trailing"),
    pytest.param(f"{RFC9440_HEADER}:", "unexpected", id="extra-colon"),
    pytest.param(f":{_b64(b'not a certificate')}:", "not a DER X.509", id="not-a-cert"),
    pytest.param(f":{_b64(b'0' * 40)}:", "not a DER X.509", id="junk-der"),
    pytest.param(
        RFC9440_HEADER[:21] + "+" + RFC9440_HEADER[22:], "not a DER X.509", id="negative-serial"
    ),
    pytest.param("-----BEGIN CERTIFICATE-----", "expected ':'", id="pem-text"),
    pytest.param('"' + RFC9440_HEADER + '"', "expected ':'", id="sf-string"),
    pytest.param([RFC9440_HEADER, RFC9440_HEADER], "2 times", id="repeated-field"),
    pytest.param([], "0 times", id="no-field-lines"),
    pytest.param(b"\xff:" + RFC9440_HEADER.encode(), "non-ASCII", id="non-ascii-bytes"),
    pytest.param(12, "expected a string", id="number"),
    pytest.param(":" + "A" * 20_000 + ":", "too large", id="too-large"),
]


@pytest.mark.parametrize(("value", "problem"), _BAD_CLIENT_CERT)
def test_parse_client_cert_refusals(value: Any, problem: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_client_cert_header(value)
    err = info.value
    assert err.error == "invalid_request"
    assert err.status_code == 400
    assert err.check == "client_cert"
    assert err.details["header"] == "Client-Cert"
    assert problem in str(err.details["problem"])
    assert str(err.details["rfc"]).startswith("RFC 9440")
    assert _CERT_B64[:40] not in err.explain()


def test_refusal_says_where(client_cert: Any) -> None:
    value = ":" + _CERT_B64[:10] + "%" + _CERT_B64[10:] + ":"
    with pytest.raises(InvalidRequest) as info:
        parse_client_cert_header(value)
    assert info.value.details["bad_character_at"] == 11


# --- Client-Cert-Chain -------------------------------------------------------------------


def test_chain_forms(ca: Any, client_cert: Any) -> None:
    one = format_client_cert_header(ca.cert)
    two = format_client_cert_header(client_cert.cert)
    assert parse_client_cert_chain_header("") == []
    assert parse_client_cert_chain_header("  ") == []
    assert [_der(c) for c in parse_client_cert_chain_header(one)] == [ca.der]
    for value in (
        f"{two},{one}",
        f"{two} ,\t{one}",
        [two, one],
        (f"{two}", f"{one}"),
        f"{two}, {one}".encode(),
    ):
        assert [_der(c) for c in parse_client_cert_chain_header(value)] == [client_cert.der, ca.der]


@pytest.mark.parametrize(
    ("value", "problem", "item"),
    [
        pytest.param(f"{RFC9440_HEADER},", "trailing comma", None, id="trailing-comma"),
        pytest.param(f"{RFC9440_HEADER}, ", "trailing comma", None, id="trailing-comma-space"),
        pytest.param(f",{RFC9440_HEADER}", "expected ':'", 0, id="leading-comma"),
        pytest.param(f"{RFC9440_HEADER},,{RFC9440_HEADER}", "expected ':'", 1, id="empty-member"),
        pytest.param(f"({RFC9440_HEADER})", "expected ':'", 0, id="inner-list"),
        pytest.param(f"{RFC9440_HEADER};a=1, {RFC9440_HEADER}", "parameters", 0, id="params"),
        pytest.param(f"{RFC9440_HEADER} {RFC9440_HEADER}", "expected ','", 0, id="no-comma"),
        pytest.param(f"{RFC9440_HEADER}, token", "expected ':'", 1, id="token-member"),
        pytest.param(f"{RFC9440_HEADER}, :{_b64(b'junk')}:", "not a DER", 1, id="junk-member"),
        pytest.param("A" * 70_000, "too large", None, id="too-large"),
    ],
)
def test_parse_chain_refusals(value: str, problem: str, item: int | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_client_cert_chain_header(value)
    err = info.value
    assert err.check == "client_cert"
    assert err.details["header"] == "Client-Cert-Chain"
    assert problem in str(err.details["problem"])
    assert err.details.get("item") == item


# --- verify_certificate_binding (RFC 8705 §3) --------------------------------------------


def test_binding_accepts_the_bound_certificate_in_any_form(client_cert: Any) -> None:
    token = _token(client_cert.thumbprint)
    for form in (
        client_cert.cert,
        client_cert.der,
        client_cert.pem,
        client_cert.pem.decode(),
        parse_client_cert_header(format_client_cert_header(client_cert.cert)),
    ):
        assert verify_certificate_binding(token, form) == client_cert.thumbprint


@pytest.mark.parametrize(
    ("bound", "presented", "claimed", "computed", "fragment"),
    [
        ("client", "other", "client", "other", "different client certificate"),
        ("client", None, "client", None, "no client certificate"),
        ("client", b"garbage", "client", None, "could not be read"),
        (None, "client", None, "absent", "not bound"),
    ],
)
def test_binding_refusals(
    client_cert: Any,
    other_client_cert: Any,
    bound: str | None,
    presented: Any,
    claimed: str | None,
    computed: str | None,
    fragment: str,
) -> None:
    certs = {"client": client_cert, "other": other_client_cert}
    token = _token(certs[bound].thumbprint if bound else None)
    given = certs[presented].cert if presented in certs else presented
    with pytest.raises(InvalidToken) as info:
        verify_certificate_binding(token, given)
    err = info.value
    assert err.error == "invalid_token"
    assert err.status_code == 401  # RFC 8705 §3
    assert err.check == "x5t#S256"
    assert fragment in err.description
    assert err.details["claimed"] == (certs[claimed].thumbprint if claimed else None)
    if computed != "absent":
        assert err.details["computed"] == (certs[computed].thumbprint if computed else None)
    text = err.explain() + str(err) + err.www_authenticate
    for cert in certs.values():
        assert _b64(cert.der)[:60] not in text
        assert "BEGIN" not in text


def test_binding_compares_in_constant_time(
    client_cert: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(mtls.hmac, "compare_digest", spy)
    verify_certificate_binding(_token(client_cert.thumbprint), client_cert.cert)
    assert calls == [(client_cert.thumbprint.encode(), client_cert.thumbprint.encode())]


def test_end_to_end_behind_a_tls_terminating_proxy(
    issuer: Issuer,
    jwks: JWKSet,
    client_cert: Any,
    other_client_cert: Any,
    make_token: Callable[..., str],
) -> None:
    # AS binds the token to the client's certificate; the proxy forwards Client-Cert.
    token = make_token(x5t_s256=cert_thumbprint(client_cert.cert))
    access = verify_access_token(token, issuer=issuer.issuer, audience=AUD, jwks=jwks, now=NOW)
    assert access.binding == "mtls"
    forwarded = format_client_cert_header(client_cert.pem)
    cert = parse_client_cert_header(forwarded)
    assert verify_certificate_binding(access, cert) == client_cert.thumbprint
    stolen_with = parse_client_cert_header(format_client_cert_header(other_client_cert.cert))
    with pytest.raises(InvalidToken) as info:
        verify_certificate_binding(access, stolen_with)
    assert info.value.check == "x5t#S256"


# --- fuzz: the header parsers only ever answer with a certificate or InvalidRequest -----


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="latin-1"), max_size=200))
def test_fuzz_arbitrary_client_cert_values(value: str) -> None:
    for parser in (parse_client_cert_header, parse_client_cert_chain_header):
        try:
            parser(value)
        except InvalidRequest as exc:
            refused: InvalidRequest = exc
        else:
            continue
        assert refused.check == "client_cert"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(RFC9440_HEADER) - 1), st.sampled_from(list(':,; =+/Aa0_-\t("')))
def test_fuzz_mutated_rfc9440_header(position: int, char: str) -> None:
    mutated = RFC9440_HEADER[:position] + char + RFC9440_HEADER[position + 1 :]
    try:
        cert = parse_client_cert_header(mutated)
    except InvalidRequest as exc:
        refused: InvalidRequest = exc
    else:
        _assert_same_der_iff_same_thumbprint(cert)
        return
    assert refused.error == "invalid_request"


def _assert_same_der_iff_same_thumbprint(cert: x509.Certificate) -> None:
    # the few surviving mutations still decode to a certificate whose thumbprint differs
    # from the original unless the DER is unchanged
    same = _der(cert) == _der(parse_client_cert_header(RFC9440_HEADER))
    assert (cert_thumbprint(cert) == RFC9440["x5t_s256_computed"]) is same


_RFC9440_DER = base64.b64decode(RFC9440_HEADER.strip(":"))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, len(_RFC9440_DER) - 1),
    st.integers(0, 255),
    st.sampled_from(["set", "insert", "delete", "truncate"]),
)
def test_fuzz_mutated_der(position: int, byte: int, kind: str) -> None:
    raw = bytearray(_RFC9440_DER)
    if kind == "set":
        raw[position] = byte
    elif kind == "insert":
        raw.insert(position, byte)
    elif kind == "delete":
        del raw[position]
    else:
        del raw[position:]
    value = ":" + base64.b64encode(bytes(raw)).decode() + ":"
    try:
        cert = parse_client_cert_header(value)
    except InvalidRequest as exc:
        refused: InvalidRequest = exc
    else:
        assert len(cert_thumbprint(cert)) == 43
        return
    assert refused.details["problem"] in (
        "the value is not a DER X.509 certificate",
        "the Byte Sequence is empty",
    )
