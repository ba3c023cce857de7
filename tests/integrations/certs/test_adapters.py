"""Adapter behaviour beyond the vendor examples: header handling, XFCC element choice and
quoting, digest conversion, bounds, and one negative test per check."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.integrations.certs._support import (
    event,
    headers,
    pem_der,
    rfc9440_leaf_der,
    value,
    x5t,
)
from tokenlib.errors import InvalidRequest
from tokenlib.integrations.certs import (
    DEFAULT_HEADERS,
    MAX_CHAIN_LENGTH,
    MAX_VALUE_LENGTH,
    MAX_XFCC_ELEMENTS,
    SOURCES,
    ForwardedCertificateError,
    client_cert_thumbprint,
    client_cert_thumbprint_from_lambda_event,
    client_certificate,
    forwarded_client_cert,
    parse_xfcc,
    xfcc_element_certificate,
)

NODE_DER = pem_der("node_oidc_provider_client.crt")
LEAF_DER = rfc9440_leaf_der()
NODE_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    + "\n".join(
        base64.b64encode(NODE_DER).decode()[i : i + 64]
        for i in range(0, len(base64.b64encode(NODE_DER)), 64)
    )
    + "\n-----END CERTIFICATE-----\n"
)
LEAF_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    + base64.b64encode(LEAF_DER).decode()
    + "\n-----END CERTIFICATE-----\n"
)


def xfcc_cert(pem: str) -> str:
    """Envoy's URL-encoded PEM (every reserved character escaped)."""
    return quote(pem, safe="")


# --- the public API contract -------------------------------------------------------------


def test_sources_are_the_issue_list() -> None:
    assert set(SOURCES) == {
        "rfc9440",
        "envoy_xfcc",
        "aws_alb",
        "traefik",
        "nginx",
        "haproxy",
        "gcp",
        "cloudflare",
        "cloudfront",
        "azure_app_service",
        "kong",
    }
    assert set(DEFAULT_HEADERS) == set(SOURCES)


@pytest.mark.parametrize("source", SOURCES)
def test_absent_is_none(source: str) -> None:
    assert client_cert_thumbprint({"Authorization": "Bearer x"}, source=source) is None
    assert client_certificate([], source=source) is None


@pytest.mark.parametrize("source", SOURCES)
def test_empty_value_is_none(source: str) -> None:
    """Template-filled headers (GCP, Cloudflare) are empty when no certificate came."""
    pairs = [(name, "") for name in DEFAULT_HEADERS[source]]
    assert client_cert_thumbprint(pairs, source=source) is None


@pytest.mark.parametrize("source", SOURCES)
def test_duplicate_certificate_header_is_refused(source: str) -> None:
    name = DEFAULT_HEADERS[source][0]
    pairs = [(name, "x"), (name.upper(), "y")]
    with pytest.raises(ForwardedCertificateError, match="more than once") as info:
        client_cert_thumbprint(pairs, source=source)
    assert isinstance(info.value, InvalidRequest)
    assert info.value.error == "invalid_request"
    assert info.value.status_code == 400


@pytest.mark.parametrize("source", SOURCES)
def test_oversized_value_is_refused_before_parsing(source: str) -> None:
    pairs = [(DEFAULT_HEADERS[source][0], "A" * (MAX_VALUE_LENGTH + 1))]
    with pytest.raises(ForwardedCertificateError, match="too large") as info:
        client_cert_thumbprint(pairs, source=source)
    assert info.value.details["limit"] == MAX_VALUE_LENGTH


def test_unknown_source_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown certificate source"):
        client_cert_thumbprint({}, source="apache")


def test_empty_header_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="header="):
        client_cert_thumbprint({}, source="nginx", header=" ")


def test_header_names_are_case_insensitive_and_bytes_work() -> None:
    raw = quote(NODE_PEM, safe="")
    assert client_cert_thumbprint({"x-ssl-client-cert": raw}, source="nginx") == x5t(NODE_DER)
    asgi = [(b"host", b"rs"), (b"x-ssl-client-cert", raw.encode())]
    assert client_cert_thumbprint(asgi, source="nginx") == x5t(NODE_DER)


def test_header_keyword_reads_only_that_header() -> None:
    raw = quote(NODE_PEM, safe="")
    pairs = {"X-Client-Certificate": raw, "X-SSL-Client-Cert": "garbage"}
    assert client_cert_thumbprint(pairs, source="nginx", header="X-Client-Certificate") == x5t(
        NODE_DER
    )


def test_error_details_never_echo_the_value() -> None:
    secret = "not-a-cert-" + "Z" * 200
    with pytest.raises(ForwardedCertificateError) as info:
        client_cert_thumbprint({"X-ARR-ClientCert": secret}, source="azure_app_service")
    assert secret not in str(info.value.details)
    assert secret not in str(info.value)
    assert info.value.details["source"] == "azure_app_service"
    assert info.value.details["header"] == "X-ARR-ClientCert"


@pytest.mark.parametrize("bad", [[("only-one",)], [(1, "x")], [("x-ssl-client-cert", 3)]])
def test_bad_header_pairs_are_invalid_request(bad: Any) -> None:
    with pytest.raises(InvalidRequest):
        client_cert_thumbprint(bad, source="nginx")


@pytest.mark.parametrize("bad", ["a string", b"bytes", 42, None])
def test_headers_that_are_not_headers_are_a_programming_error(bad: Any) -> None:
    with pytest.raises(TypeError):
        client_cert_thumbprint(bad, source="nginx")


# --- digests -------------------------------------------------------------------------------

DIGEST = hashlib.sha256(NODE_DER).digest()


@pytest.mark.parametrize(
    "form",
    [
        DIGEST.hex(),
        DIGEST.hex().upper(),
        ":".join(f"{b:02X}" for b in DIGEST),
        base64.b64encode(DIGEST).decode(),
        base64.b64encode(DIGEST).decode().rstrip("="),
        base64.urlsafe_b64encode(DIGEST).decode().rstrip("="),
    ],
    ids=["hex", "HEX", "colon-hex", "base64", "base64-nopad", "base64url"],
)
def test_sha256_forms_convert_to_x5t(form: str) -> None:
    assert client_cert_thumbprint({"X-SSL-Client-Cert": form}, source="haproxy") == x5t(NODE_DER)


SHA1 = hashlib.sha1(NODE_DER).digest()  # noqa: S324 - a SHA-1 fingerprint to refuse


@pytest.mark.parametrize(
    ("source", "header", "form"),
    [
        ("nginx", None, SHA1.hex()),  # $ssl_client_fingerprint
        ("kong", "X-Client-Cert-Fingerprint", SHA1.hex()),
        ("haproxy", None, SHA1.hex()),  # ssl_c_sha1,hex
        ("cloudfront", None, ":".join(f"{b:02x}" for b in SHA1)),
        ("gcp", "X-Client-Cert-Hash", base64.b64encode(SHA1).decode()),
        ("azure_app_service", "X-Fingerprint", SHA1.hex()),
        ("envoy_xfcc", None, f"By=spiffe://a;Hash={SHA1.hex()}"),
    ],
)
def test_sha1_fingerprints_are_refused(source: str, header: str | None, form: str) -> None:
    name = header or {"nginx": "X-SSL-Client-Cert", "haproxy": "X-SSL-Client-Cert"}.get(
        source, DEFAULT_HEADERS[source][-1]
    )
    with pytest.raises(ForwardedCertificateError, match="SHA-1") as info:
        client_cert_thumbprint({name: form}, source=source, header=header)
    assert info.value.details["rfc"] == "RFC 8705 §3.1"


@pytest.mark.parametrize(
    "form",
    [
        DIGEST[:31].hex(),
        base64.b64encode(DIGEST + b"\0").decode(),
        "ab:cd:e",
        "zz" * 32,
        hashlib.sha512(NODE_DER).hexdigest(),
    ],
    ids=["31-bytes", "33-bytes", "odd-colon-hex", "not-hex", "sha512"],
)
def test_wrong_size_or_shape_digests_are_refused(form: str) -> None:
    with pytest.raises(ForwardedCertificateError):
        client_cert_thumbprint({"CloudFront-Viewer-Cert-Sha256": form}, source="cloudfront")


def test_headers_of_one_source_must_agree() -> None:
    pairs = {
        "X-Client-Cert-Leaf": ":" + base64.b64encode(LEAF_DER).decode() + ":",
        "X-Client-Cert-Hash": base64.b64encode(hashlib.sha256(NODE_DER).digest()).decode(),
    }
    with pytest.raises(ForwardedCertificateError, match="different certificates"):
        client_cert_thumbprint(pairs, source="gcp")


def test_cloudfront_pem_and_digest_disagreeing() -> None:
    pairs = {
        "CloudFront-Viewer-Cert-Pem": quote(LEAF_PEM, safe=""),
        "CloudFront-Viewer-Cert-Sha256": hashlib.sha256(NODE_DER).hexdigest(),
    }
    with pytest.raises(ForwardedCertificateError, match="different certificates"):
        client_cert_thumbprint(pairs, source="cloudfront")


# --- encodings -----------------------------------------------------------------------------


def test_alb_value_form_decoded_by_mistake_is_refused() -> None:
    """What an app sees if something in front ran ``unquote_plus``: '+' became ' '."""
    broken = value("aws_alb_leaf.txt").replace("+", " ")
    with pytest.raises(ForwardedCertificateError):
        client_cert_thumbprint({"X-Amzn-Mtls-Clientcert-Leaf": broken}, source="aws_alb")


def test_alb_leaf_and_passthrough_disagreeing() -> None:
    pairs = headers("aws_alb_leaf.txt") + headers("aws_alb_passthrough_chain.txt")
    with pytest.raises(ForwardedCertificateError, match="different certificates"):
        client_cert_thumbprint(pairs, source="aws_alb")


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("aws_alb", "-----BEGIN%20CERTIFICATE-----%0AMIIB"),  # no END line
        ("aws_alb", "-----BEGIN%20CERTIFICATE-----%0A%FF%FE%0A-----END%20CERTIFICATE-----"),
        ("nginx", quote(NODE_PEM, safe="") + "trailing-junk"),
        ("nginx", quote(NODE_PEM.replace("MIIB", "MIIB!"), safe="")),
        ("nginx", base64.b64encode(NODE_DER).decode()),  # base64 DER where PEM is expected
        ("kong", quote(NODE_PEM * (MAX_CHAIN_LENGTH + 1), safe="")),
        ("azure_app_service", base64.b64encode(NODE_DER + b"\0").decode()),  # trailing data
        ("azure_app_service", base64.b64encode(b"\x30\x03\x02\x01\x00").decode() * 20),
        ("haproxy", "%%%"),
        ("haproxy", base64.b64encode(NODE_PEM.encode()).decode()),  # base64 of PEM, not DER
        ("traefik", NODE_PEM.replace("\n", "")),  # PEM armour is not Traefik's format
        ("traefik", base64.b64encode(NODE_DER).decode() + ",,"),  # empty list item
        ("traefik", ",".join([base64.b64encode(NODE_DER).decode()] * (MAX_CHAIN_LENGTH + 1))),
        ("traefik", "%E0%A4%A"),
        ("rfc9440", ":" + base64.b64encode(NODE_DER).decode() + ":, :AAAA:"),  # a list
        ("rfc9440", base64.b64encode(NODE_DER).decode()),  # missing the colons
        ("gcp", "MIIB" * 30),  # neither RFC 9440 nor a digest
    ],
)
def test_malformed_values_are_invalid_request(source: str, bad: str) -> None:
    with pytest.raises(ForwardedCertificateError) as info:
        client_cert_thumbprint({DEFAULT_HEADERS[source][0]: bad}, source=source)
    assert info.value.error == "invalid_request"


def test_traefik_escaped_and_plain_single_cert() -> None:
    body = base64.b64encode(NODE_DER).decode()
    for form in (body, quote_plus(body, safe="")):
        assert client_cert_thumbprint(
            {"X-Forwarded-Tls-Client-Cert": form}, source="traefik"
        ) == x5t(NODE_DER)


def test_nginx_unescaped_pem_with_tabs_is_read() -> None:
    """Deprecated ``$ssl_client_cert``: PEM lines continued with a tab."""
    legacy = NODE_PEM.strip().replace("\n", "\n\t")
    assert client_cert_thumbprint({"X-SSL-Client-Cert": legacy}, source="nginx") == x5t(NODE_DER)


def test_rfc9440_header_keyword_reads_another_name() -> None:
    raw = ":" + base64.b64encode(LEAF_DER).decode() + ":"
    assert client_cert_thumbprint(
        {"X-Client-Cert-Rfc9440": raw}, source="rfc9440", header="X-Client-Cert-Rfc9440"
    ) == x5t(LEAF_DER)


def test_rfc9440_chain_errors_name_the_chain_header() -> None:
    pairs = {
        "Client-Cert": ":" + base64.b64encode(LEAF_DER).decode() + ":",
        "Client-Cert-Chain": ":AAAA:",
    }
    with pytest.raises(ForwardedCertificateError) as info:
        client_cert_thumbprint(pairs, source="rfc9440")
    assert info.value.details["header"] == "Client-Cert-Chain"


# --- XFCC ----------------------------------------------------------------------------------


def test_xfcc_takes_the_last_element() -> None:
    """The element the proxy next to the app added; earlier ones came from further out
    (or from the client, under APPEND_FORWARD)."""
    attacker = f'Hash={hashlib.sha256(LEAF_DER).hexdigest()};Cert="{xfcc_cert(LEAF_PEM)}"'
    edge = f"By=spiffe://rs;Hash={hashlib.sha256(NODE_DER).hexdigest()}"
    assert client_cert_thumbprint(
        {"x-forwarded-client-cert": f"{attacker},{edge}"}, source="envoy_xfcc"
    ) == x5t(NODE_DER)


def test_xfcc_last_element_without_certificate_is_none() -> None:
    first = f"Hash={hashlib.sha256(NODE_DER).hexdigest()}"
    last = "By=spiffe://rs;URI=spiffe://caller"
    assert (
        client_cert_thumbprint({"x-forwarded-client-cert": f"{first},{last}"}, source="envoy_xfcc")
        is None
    )


def test_xfcc_quoted_values_with_commas_semicolons_and_escaped_quotes() -> None:
    subject = 'CN=a\\,b;c=\\"d\\"'
    xfcc = (
        f'By="spiffe://x/a,b";Subject="{subject}";URI=spiffe://c,'
        f'By=spiffe://rs;Hash={hashlib.sha256(NODE_DER).hexdigest()};Subject="O=x,CN=y;z"'
    )
    first, last = parse_xfcc(xfcc)
    assert first.by == "spiffe://x/a,b"
    assert first.subject == 'CN=a,b;c="d"'
    assert last.subject == "O=x,CN=y;z"
    assert client_cert_thumbprint({"X-Forwarded-Client-Cert": xfcc}, source="envoy_xfcc") == x5t(
        NODE_DER
    )


def test_xfcc_keys_are_case_insensitive() -> None:
    xfcc = f"by=spiffe://rs;HASH={hashlib.sha256(NODE_DER).hexdigest()}"
    assert client_cert_thumbprint({"x-forwarded-client-cert": xfcc}, source="envoy_xfcc") == x5t(
        NODE_DER
    )


def test_xfcc_chain_only_gives_the_leaf() -> None:
    chain = xfcc_cert(NODE_PEM + LEAF_PEM)
    found = forwarded_client_cert(
        {"x-forwarded-client-cert": f'Chain="{chain}"'}, source="envoy_xfcc"
    )
    assert found is not None
    assert found.thumbprint == x5t(NODE_DER)
    assert [c.public_bytes(Encoding.DER) for c in found.chain] == [LEAF_DER]


def test_xfcc_hash_must_match_cert() -> None:
    xfcc = f'Hash={hashlib.sha256(LEAF_DER).hexdigest()};Cert="{xfcc_cert(NODE_PEM)}"'
    with pytest.raises(ForwardedCertificateError, match="does not match") as info:
        client_cert_thumbprint({"x-forwarded-client-cert": xfcc}, source="envoy_xfcc")
    assert info.value.details["computed"] == x5t(NODE_DER)


def test_xfcc_chain_must_start_with_cert() -> None:
    xfcc = f'Cert="{xfcc_cert(NODE_PEM)}";Chain="{xfcc_cert(LEAF_PEM)}"'
    with pytest.raises(ForwardedCertificateError, match="Chain="):
        client_cert_thumbprint({"x-forwarded-client-cert": xfcc}, source="envoy_xfcc")


@pytest.mark.parametrize(
    "bad",
    [
        'By="unterminated;Hash=00',
        "Hash",  # not key=value
        "=abc",
        "Hash=aa;Hash=bb",  # repeated single-valued key
        'Subject="a"b',  # text after the closing quote
        'Subject=a"b',  # quote inside an unquoted value
        "By=x,,By=y",  # empty element
        ",".join(["By=x"] * (MAX_XFCC_ELEMENTS + 1)),
        f'Cert="{xfcc_cert(NODE_PEM + NODE_PEM)}"',  # Cert= is one certificate
        "Hash=nothex",
        'Cert="-----BEGIN%20CERTIFICATE-----%0A%C3%28%0A-----END%20CERTIFICATE-----"',
        'Chain="%FF%FE"',
    ],
)
def test_malformed_xfcc_is_invalid_request(bad: str) -> None:
    with pytest.raises(ForwardedCertificateError):
        client_cert_thumbprint({"x-forwarded-client-cert": bad}, source="envoy_xfcc")


def test_pick_an_earlier_xfcc_element_by_its_by() -> None:
    """Inside a mesh the last element is the calling sidecar's; the gateway's is earlier."""
    gateway = f'By=spiffe://cluster/ns/istio-system/sa/ingress;Cert="{xfcc_cert(NODE_PEM)}"'
    sidecar = f"By=spiffe://cluster/ns/app/sa/api;Hash={hashlib.sha256(LEAF_DER).hexdigest()}"
    elements = parse_xfcc(f"{gateway},{sidecar}")
    chosen = next(e for e in elements if e.by == "spiffe://cluster/ns/istio-system/sa/ingress")
    found = xfcc_element_certificate(chosen)
    assert found is not None
    assert found.thumbprint == x5t(NODE_DER)


# --- Lambda --------------------------------------------------------------------------------


def test_lambda_event_without_certificate_is_none() -> None:
    assert client_cert_thumbprint_from_lambda_event({"requestContext": {"identity": {}}}) is None
    assert client_cert_thumbprint_from_lambda_event({}) is None
    assert (
        client_cert_thumbprint_from_lambda_event(
            {"requestContext": {"identity": {"clientCert": None}}}
        )
        is None
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"requestContext": {"identity": {"clientCert": {"clientCertPem": 42}}}},
        {"requestContext": {"identity": {"clientCert": {"clientCertPem": "not pem"}}}},
        {"requestContext": {"identity": {"clientCert": {"clientCertPem": NODE_PEM + LEAF_PEM}}}},
        {
            "requestContext": {
                "identity": {"clientCert": {"clientCertPem": NODE_PEM}},
                "authentication": {"clientCert": {"clientCertPem": LEAF_PEM}},
            }
        },
        {"requestContext": {"identity": {"clientCert": {"clientCertPem": "A" * 70_000}}}},
    ],
    ids=["not-a-string", "not-pem", "two-certificates", "disagreeing", "too-large"],
)
def test_lambda_event_malformed(bad: dict[str, Any]) -> None:
    with pytest.raises(ForwardedCertificateError):
        client_cert_thumbprint_from_lambda_event(bad)


def test_lambda_event_not_a_mapping() -> None:
    with pytest.raises(ForwardedCertificateError):
        client_cert_thumbprint_from_lambda_event("{}")  # type: ignore[arg-type]


def test_lambda_rest_event_matches_its_json() -> None:
    data = event("aws_lambda_rest_event.json")
    pem = data["requestContext"]["identity"]["clientCert"]["clientCertPem"]
    assert client_cert_thumbprint_from_lambda_event(data) == x5t(NODE_DER)
    assert pem == NODE_PEM
