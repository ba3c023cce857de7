"""Property: whatever a peer puts in a certificate header, an adapter returns an
``x5t#S256`` string or ``None``, or raises ``InvalidRequest`` - never another exception."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integrations.certs._support import headers
from tokenlib.errors import InvalidRequest
from tokenlib.integrations.certs import (
    DEFAULT_HEADERS,
    SOURCES,
    client_cert_thumbprint,
    client_cert_thumbprint_from_lambda_event,
    forwarded_client_cert,
)

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
X5T = re.compile(r"[A-Za-z0-9_-]{43}")

SEEDS: dict[str, list[tuple[str, str]]] = {
    "rfc9440": headers("rfc9440_appA_client_cert.txt")
    + headers("rfc9440_appA_client_cert_chain.txt"),
    "envoy_xfcc": headers("consul_xfcc_between_services.txt"),
    "aws_alb": headers("aws_alb_passthrough_chain.txt"),
    "traefik": headers("traefik_v2_escaped_chain.txt"),
    "nginx": headers("nginx_escaped_cert.txt"),
    "haproxy": headers("haproxy_ssl_c_der_base64.txt"),
    "gcp": headers("gcp_custom_headers.txt"),
    "cloudflare": headers("cloudflare_der_base64.txt"),
    "cloudfront": headers("cloudfront_pem_and_sha256.txt"),
    "azure_app_service": headers("azure_x_arr_clientcert.txt"),
    "kong": headers("kong_x_client_cert.txt"),
}

# Characters that matter to the parsers, so random text reaches their branches.
SPECIAL = st.text(
    alphabet=st.sampled_from(list(',;="\\%:-+/= \t\nABCDEFMIabcdef0123456789BEGINCERTIFICATE')),
    max_size=300,
)


def check(pairs: Any, source: str, header: str | None = None) -> None:
    try:
        result = client_cert_thumbprint(pairs, source=source, header=header)
    except InvalidRequest as exc:
        outcome: str | None = exc.error
    else:
        assert result is None or X5T.fullmatch(result), result
        return
    assert outcome == "invalid_request"


@SETTINGS
@given(source=st.sampled_from(SOURCES), text=st.one_of(st.text(max_size=400), SPECIAL))
def test_random_values(source: str, text: str) -> None:
    for name in DEFAULT_HEADERS[source]:
        check([(name, text)], source)


@SETTINGS
@given(source=st.sampled_from(SOURCES), raw=st.binary(max_size=400))
def test_random_bytes_as_asgi_headers(source: str, raw: bytes) -> None:
    check([(DEFAULT_HEADERS[source][0].lower().encode(), raw)], source)


@SETTINGS
@given(source=st.sampled_from(SOURCES), data=st.data())
def test_mutated_vendor_examples(source: str, data: st.DataObject) -> None:
    pairs = list(SEEDS[source])
    index = data.draw(st.integers(0, len(pairs) - 1))
    name, text = pairs[index]
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        char = data.draw(st.sampled_from(list(',;="\\%: +/=A0\x00\xff')))
        if op == "insert":
            text = text[:pos] + char + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + 1 :]
        elif op == "replace":
            text = text[:pos] + char + text[pos + 1 :]
        else:
            text = text[:pos]
    pairs[index] = (name, text)
    check(pairs, source)
    found = None
    try:
        found = forwarded_client_cert(pairs, source=source)
    except InvalidRequest:
        return
    if found is not None:
        assert found.source == source


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["requestContext", "identity", "authentication", "clientCert", "clientCertPem", "x"]
            ),
            children,
            max_size=3,
        )
    ),
    max_leaves=12,
)


@SETTINGS
@given(event=JSON)
def test_random_lambda_events(event: Any) -> None:
    try:
        result = client_cert_thumbprint_from_lambda_event(event)
    except InvalidRequest:
        return
    assert result is None or X5T.fullmatch(result)


XFCC_KEYS = st.sampled_from(["By", "Hash", "Cert", "Chain", "Subject", "URI", "DNS", "hash", "x"])
XFCC_VALUES = st.one_of(
    SPECIAL,
    st.sampled_from(
        [
            "-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A",
            "%FF%FE%C3%28",
            "00" * 32,
            "00" * 20,
        ]
    ),
)


@st.composite
def xfcc(draw: st.DrawFn) -> str:
    elements = []
    for _ in range(draw(st.integers(1, 4))):
        pairs = []
        for _ in range(draw(st.integers(1, 4))):
            key = draw(XFCC_KEYS)
            val = draw(XFCC_VALUES)
            if draw(st.booleans()):
                val = '"' + val.replace("\\", "\\\\").replace('"', '\\"') + '"'
            pairs.append(f"{key}={val}")
        elements.append(";".join(pairs))
    return ",".join(elements)


@SETTINGS
@given(value=xfcc())
def test_random_xfcc(value: str) -> None:
    check([("x-forwarded-client-cert", value)], "envoy_xfcc")


ADVERSARIAL = [
    '"\\' * 20_000,
    "," * 60_000,
    ";" * 60_000,
    "a=" * 30_000,
    "%" * 60_000,
    "%41" * 20_000,
    "-----BEGIN CERTIFICATE-----" * 2_000,
    "-----BEGIN CERTIFICATE-----" + "A" * 60_000,
    "-----BEGIN%20CERTIFICATE-----%0A" * 1_500,
    ":" + "A" * 60_000 + ":",
    "A" * 65_536,
    "Hash=" + "0" * 60_000,
    'Cert="' + "%2B" * 20_000 + '"',
]


def test_largest_adversarial_values_are_refused_or_absent() -> None:
    """At the size bound, hostile values end in a typed error (the bound is checked first,
    so a single request cannot make an adapter chew on more than 64 KiB)."""
    for source in SOURCES:
        for text in ADVERSARIAL:
            check([(DEFAULT_HEADERS[source][0], text)], source)
