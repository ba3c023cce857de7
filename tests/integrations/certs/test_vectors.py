"""Every adapter turns its vendor's example (tests/integrations/certs/vectors, sources in
SOURCES.md) into the right ``x5t#S256``, computed independently from the DER."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.integrations.certs._support import (
    event,
    headers,
    pem_der,
    rfc9440_chain_ders,
    rfc9440_leaf_der,
    value,
    x5t,
    x5t_from_hex,
)
from tokenlib.errors import InvalidRequest
from tokenlib.integrations.certs import (
    client_cert_thumbprint,
    client_cert_thumbprint_from_lambda_event,
    client_certificate,
    client_certificate_from_lambda_event,
    forwarded_client_cert,
    parse_xfcc,
)


@dataclass(frozen=True)
class Vector:
    file: str
    source: str
    expected: Callable[[], str]
    header: str | None = None
    has_cert: bool = True
    chain_length: int = 0


def _node() -> str:
    return x5t(pem_der("node_oidc_provider_client.crt"))


def _rfc9440() -> str:
    return x5t(rfc9440_leaf_der())


VECTORS = [
    # RFC 9440 Appendix A (Figures 2 and 3).
    Vector("rfc9440_appA_client_cert.txt", "rfc9440", _rfc9440),
    # Envoy docs: hash-only elements; example 2 has two hops and the *last* one counts.
    Vector(
        "envoy_docs_xfcc_1.txt",
        "envoy_xfcc",
        lambda: x5t_from_hex("468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688"),
        has_cert=False,
    ),
    Vector(
        "envoy_docs_xfcc_2.txt",
        "envoy_xfcc",
        lambda: x5t_from_hex("9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e"),
        has_cert=False,
    ),
    Vector(
        "envoy_docs_xfcc_3.txt",
        "envoy_xfcc",
        lambda: x5t_from_hex("468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688"),
        has_cert=False,
    ),
    # Real Envoy output: Hash= and the SHA-256 of Cert= agree.
    Vector(
        "consul_xfcc_between_services.txt",
        "envoy_xfcc",
        lambda: x5t_from_hex("c552ee3990fd6e9bb38b1a8bdd28e8358c339d282e6bb92fc86d04915407f47d"),
    ),
    Vector(
        "istio_gateway_xfcc_capture.txt",
        "envoy_xfcc",
        lambda: x5t_from_hex("e91a9ae1bf68ea3506ee5926a18ce759a0b34a996d5a8fcfe814828ab261e56b"),
    ),
    Vector("aws_alb_leaf.txt", "aws_alb", _node),
    Vector("aws_alb_passthrough_chain.txt", "aws_alb", _rfc9440, chain_length=2),
    Vector(
        "traefik_v3_sanitize_minimal_cheese.txt",
        "traefik",
        lambda: x5t(pem_der("traefik_minimal_cheese.crt")),
    ),
    Vector(
        "traefik_v3_chain.txt",
        "traefik",
        lambda: x5t(pem_der("traefik_minimal.crt")),
        chain_length=1,
    ),
    Vector(
        "traefik_v2_escaped_chain.txt",
        "traefik",
        lambda: x5t(pem_der("traefik_minimal.crt")),
        chain_length=1,
    ),
    Vector("nginx_escaped_cert.txt", "nginx", _node),
    Vector("haproxy_ssl_c_der_base64.txt", "haproxy", _node),
    Vector("haproxy_sha2_ub64enc.txt", "haproxy", _node, has_cert=False),
    Vector("gcp_custom_headers.txt", "gcp", _rfc9440),
    Vector("gcp_custom_headers.txt", "gcp", _rfc9440, header="X-Client-Cert-Hash", has_cert=False),
    Vector("cloudflare_der_base64.txt", "cloudflare", _node),
    Vector(
        "cloudflare_docs_fingerprint_sha256.txt",
        "cloudflare",
        lambda: x5t_from_hex("af363dc85bc942a892d3cee9796190fdb36d89cd588a4f1cb17c74a943439714"),
        header="cf-cert-fingerprint-sha256",
        has_cert=False,
    ),
    Vector("cloudfront_pem_and_sha256.txt", "cloudfront", _rfc9440),
    Vector(
        "cloudfront_docs_sha256.txt",
        "cloudfront",
        lambda: x5t_from_hex("01fbf94fef5569753420c349f49adbfd80af5275377816e3ab1fb371b29cb586"),
        has_cert=False,
    ),
    Vector("azure_x_arr_clientcert.txt", "azure_app_service", _rfc9440),
    Vector("kong_x_client_cert.txt", "kong", _rfc9440),
]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v.source}-{v.file}-{v.header}")
def test_vendor_example_gives_x5t(vector: Vector) -> None:
    pairs = headers(vector.file)
    expected = vector.expected()
    assert client_cert_thumbprint(pairs, source=vector.source, header=vector.header) == expected
    found = forwarded_client_cert(pairs, source=vector.source, header=vector.header)
    assert found is not None
    assert found.source == vector.source
    assert len(found.chain) == vector.chain_length
    cert = client_certificate(pairs, source=vector.source, header=vector.header)
    if vector.has_cert:
        assert cert is not None
        assert x5t(cert.public_bytes(Encoding.DER)) == expected
    else:
        assert cert is None


def test_rfc9440_chain_is_read_with_the_leaf() -> None:
    pairs = headers("rfc9440_appA_client_cert.txt") + headers("rfc9440_appA_client_cert_chain.txt")
    found = forwarded_client_cert(pairs, source="rfc9440")
    assert found is not None
    assert found.thumbprint == x5t(rfc9440_leaf_der())
    assert [c.public_bytes(Encoding.DER) for c in found.chain] == rfc9440_chain_ders()


def test_alb_passthrough_chain_is_the_rfc9440_chain() -> None:
    found = forwarded_client_cert(headers("aws_alb_passthrough_chain.txt"), source="aws_alb")
    assert found is not None
    assert [c.public_bytes(Encoding.DER) for c in found.chain] == rfc9440_chain_ders()


def test_alb_value_keeps_literal_plus() -> None:
    """The ALB example holds a literal '+' (and '/', '='); form decoding would break it."""
    raw = value("aws_alb_leaf.txt")
    assert "+" in raw
    assert "%2B" not in raw
    assert client_cert_thumbprint({"X-Amzn-Mtls-Clientcert-Leaf": raw}, source="aws_alb") == (
        _node()
    )


def test_traefik_both_encodings_name_the_same_chain() -> None:
    old = forwarded_client_cert(headers("traefik_v2_escaped_chain.txt"), source="traefik")
    new = forwarded_client_cert(headers("traefik_v3_chain.txt"), source="traefik")
    assert old is not None
    assert new is not None
    assert "%2B" in value("traefik_v2_escaped_chain.txt")
    assert old.thumbprint == new.thumbprint
    assert [c.public_bytes(Encoding.DER) for c in old.chain] == [
        pem_der("traefik_minimal_cheese.crt")
    ]


def test_xfcc_real_capture_hash_matches_cert() -> None:
    (element,) = parse_xfcc(value("istio_gateway_xfcc_capture.txt"))
    assert element.subject == "O=test,CN=curl.example.com"
    assert element.uri == ("spiffe://cluster.local/external-client",)
    assert element.hash is not None
    assert element.cert is not None
    cert = client_certificate(headers("istio_gateway_xfcc_capture.txt"), source="envoy_xfcc")
    assert cert is not None
    assert hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest() == element.hash


def test_envoy_docs_example_3_repeated_dns() -> None:
    (element,) = parse_xfcc(value("envoy_docs_xfcc_3.txt"))
    assert element.dns == ("lyft.com", "www.lyft.com")
    assert element.subject == "/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client"
    assert element.by == "http://frontend.lyft.com"


def test_envoy_docs_example_2_two_hops() -> None:
    first, last = parse_xfcc(value("envoy_docs_xfcc_2.txt"))
    assert first.by == "http://frontend.lyft.com"
    assert last.by == "http://backend.lyft.com"


def test_cloudflare_docs_sha1_example_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="SHA-1") as info:
        client_cert_thumbprint(
            headers("cloudflare_docs_fingerprint_sha1.txt"),
            source="cloudflare",
            header="cf-cert-fingerprint-sha1",
        )
    assert info.value.error == "invalid_request"
    assert info.value.details["digest_length"] == 20


@pytest.mark.parametrize(
    ("file", "der"),
    [
        ("aws_lambda_rest_event.json", lambda: pem_der("node_oidc_provider_client.crt")),
        ("aws_lambda_http_v2_event.json", rfc9440_leaf_der),
    ],
)
def test_lambda_event(file: str, der: Callable[[], bytes]) -> None:
    data = event(file)
    assert client_cert_thumbprint_from_lambda_event(data) == x5t(der())
    cert = client_certificate_from_lambda_event(data)
    assert cert is not None
    assert cert.public_bytes(Encoding.DER) == der()
