"""Envoy / Istio ``x-forwarded-client-cert`` (XFCC).

Format (envoyproxy/envoy ``docs/root/configuration/http/http_conn_man/headers.rst``): the
value is a comma-separated list of *elements*, one per proxy hop; a proxy appends its
element at the end. An element is ``;``-separated ``key=value`` pairs; keys are
case-insensitive (``By``, ``Hash``, ``Cert``, ``Chain``, ``Subject``, ``URI``, ``DNS``; ``DNS``
may repeat); a value holding ``,``, ``;`` or ``=`` is double-quoted, and a ``"`` inside it is
written ``\\"``. ``Hash`` is the hex SHA-256 of the client's DER certificate (so it *is* the
``x5t#S256``, re-encoded); ``Cert`` is the URL-encoded PEM leaf; ``Chain`` the URL-encoded
PEM chain, leaf first.

Which element: the **last** one, the element added by the proxy adjacent to the
application, which is the only one the application's trust in that proxy covers (an
earlier element was written by a hop further out, or by the client itself when a proxy
runs ``APPEND_FORWARD``/``FORWARD_ONLY``). Configure the edge with ``SANITIZE_SET``.
Inside a service mesh (Istio sidecars, Consul Connect), the last element's certificate is
the *calling sidecar's* workload certificate (its SPIFFE SVID), not the OAuth client's:
read the element the ingress gateway added (``parse_xfcc`` and pick it by ``by``), or bind
tokens to the mesh identity knowingly.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Final

from cryptography import x509

from tokenlib.integrations.certs._common import (
    MAX_CHAIN_LENGTH,
    MAX_VALUE_LENGTH,
    MAX_XFCC_ELEMENTS,
    ForwardedCertificate,
    ForwardedCertificateError,
    HeaderInput,
    fail,
    pem_certificates,
    read_headers,
    sha256_thumbprint,
)
from tokenlib.mtls import cert_thumbprint

SOURCE: Final = "envoy_xfcc"
HEADER: Final = "x-forwarded-client-cert"
_MAX_PAIRS: Final = 64


@dataclass(frozen=True, slots=True)
class XfccElement:
    """One hop's element of an XFCC value, values unquoted (still URL-encoded)."""

    by: str | None = None
    hash: str | None = None
    cert: str | None = None
    chain: str | None = None
    subject: str | None = None
    uri: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    other: tuple[tuple[str, str], ...] = field(default=())


def _split_top(text: str, sep: str, header: str) -> list[str]:
    """Split on ``sep`` outside double quotes, honouring ``\\"`` inside them."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted and ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    if quoted:
        raise fail(SOURCE, header, "a double-quoted value is not closed")
    parts.append("".join(current))
    return parts


def _unquote_value(raw: str, header: str) -> str:
    value = raw.strip(" \t")
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"'):
            raise fail(SOURCE, header, "text after a closing double quote")
        inner = value[1:-1]
        out: list[str] = []
        i = 0
        while i < len(inner):
            ch = inner[i]
            if ch == "\\" and i + 1 < len(inner):
                out.append(inner[i + 1])
                i += 2
                continue
            if ch == '"':
                raise fail(SOURCE, header, "an unescaped double quote inside a quoted value")
            out.append(ch)
            i += 1
        return "".join(out)
    if '"' in value:
        raise fail(SOURCE, header, "a double quote inside an unquoted value")
    return value


def parse_xfcc(value: str, *, header: str = HEADER) -> list[XfccElement]:
    """All elements of an XFCC value, first hop first (``ForwardedCertificateError`` if
    malformed). Values keep their URL encoding; ``Hash`` is checked later."""
    if len(value) > MAX_VALUE_LENGTH:
        raise fail(
            SOURCE, header, "the value is too large", length=len(value), limit=MAX_VALUE_LENGTH
        )
    raw_elements = _split_top(value, ",", header)
    if len(raw_elements) > MAX_XFCC_ELEMENTS:
        raise fail(
            SOURCE,
            header,
            "too many elements (hops)",
            count=len(raw_elements),
            limit=MAX_XFCC_ELEMENTS,
        )
    elements: list[XfccElement] = []
    for index, raw in enumerate(raw_elements):
        if not raw.strip(" \t"):
            raise fail(SOURCE, header, "an empty element", element=index)
        pairs = _split_top(raw, ";", header)
        if len(pairs) > _MAX_PAIRS:
            raise fail(SOURCE, header, "too many key=value pairs", element=index)
        single: dict[str, str] = {}
        uri: list[str] = []
        dns: list[str] = []
        other: list[tuple[str, str]] = []
        for pair in pairs:
            key, eq, rest = pair.partition("=")
            key = key.strip(" \t").lower()
            if not eq or not key:
                raise fail(SOURCE, header, "an element part is not key=value", element=index)
            if any(ch in key for ch in '"\\ \t'):
                raise fail(SOURCE, header, "an invalid key", element=index)
            val = _unquote_value(rest, header)
            if key == "uri":
                uri.append(val)
            elif key == "dns":
                dns.append(val)
            elif key in ("by", "hash", "cert", "chain", "subject"):
                if key in single:
                    raise fail(SOURCE, header, f"the key {key!r} repeats", element=index)
                single[key] = val
            else:
                other.append((key, val))
        elements.append(
            XfccElement(
                by=single.get("by"),
                hash=single.get("hash"),
                cert=single.get("cert"),
                chain=single.get("chain"),
                subject=single.get("subject"),
                uri=tuple(uri),
                dns=tuple(dns),
                other=tuple(other),
            )
        )
    return elements


def element_certificate(
    element: XfccElement, *, header: str = HEADER
) -> ForwardedCertificate | None:
    """The certificate one XFCC element names: ``Cert`` (else the first of ``Chain``),
    cross-checked against ``Hash`` when both are present; ``Hash`` alone gives the
    thumbprint only. ``None`` when the element carries none of them."""
    thumb_from_hash = sha256_thumbprint(element.hash, SOURCE, header) if element.hash else None
    leaf: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()
    if element.cert:
        certs = pem_certificates(element.cert, SOURCE, header)
        if len(certs) != 1:
            raise fail(SOURCE, header, "Cert= holds more than one certificate")
        leaf = certs[0]
    if element.chain:
        if element.chain.count("BEGIN") > MAX_CHAIN_LENGTH:
            raise fail(SOURCE, header, "Chain= has too many certificates", limit=MAX_CHAIN_LENGTH)
        chain_certs = pem_certificates(element.chain, SOURCE, header)
        if leaf is None:
            leaf = chain_certs[0]
        elif chain_certs[0] != leaf:
            raise fail(SOURCE, header, "Chain= does not start with the Cert= certificate")
        chain = tuple(chain_certs[1:])
    if leaf is None:
        if thumb_from_hash is None:
            return None
        return ForwardedCertificate(thumb_from_hash, None, (), SOURCE, header)
    thumbprint = cert_thumbprint(leaf)
    if thumb_from_hash is not None and not hmac.compare_digest(thumbprint, thumb_from_hash):
        raise ForwardedCertificateError(
            "the x-forwarded-client-cert Hash= does not match its Cert=",
            details={
                "check": "client_cert",
                "source": SOURCE,
                "header": header,
                "problem": "Hash= differs from the SHA-256 of Cert=",
                "hash": thumb_from_hash,
                "computed": thumbprint,
            },
        )
    return ForwardedCertificate(thumbprint, leaf, chain, SOURCE, header)


def read(headers: HeaderInput, header: str | None) -> ForwardedCertificate | None:
    """The client certificate of the last XFCC element (the adjacent proxy's)."""
    name = header or HEADER
    value = read_headers(headers, [name], SOURCE).get(name.lower())
    if value is None or not value.strip(" \t"):
        return None
    elements = parse_xfcc(value, header=name)
    return element_certificate(elements[-1], header=name)
