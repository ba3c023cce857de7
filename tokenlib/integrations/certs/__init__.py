"""Client certificates forwarded by TLS-terminating proxies, as RFC 8705 ``x5t#S256``.

Python ASGI/WSGI servers (uvicorn, hypercorn, granian) do not hand the application the TLS
client certificate, so a resource server checking ``cnf.x5t#S256`` (RFC 8705 §3) reads
what its proxy forwards, and every proxy forwards it differently. One adapter per proxy
family turns its header into the certificate and its ``x5t#S256``:

=======================  =============================================  ============================
``source``               header(s) read by default                      encoding
=======================  =============================================  ============================
``"rfc9440"``            ``Client-Cert`` (+ ``Client-Cert-Chain``)      Byte Sequence of DER
``"envoy_xfcc"``         ``x-forwarded-client-cert``                    XFCC (last element)
``"aws_alb"``            ``X-Amzn-Mtls-Clientcert-Leaf``,               URL-encoded PEM
                         ``X-Amzn-Mtls-Clientcert``
``"traefik"``            ``X-Forwarded-Tls-Client-Cert``                base64 DER list
``"nginx"``              ``X-SSL-Client-Cert``                          URL-encoded PEM
``"haproxy"``            ``X-SSL-Client-Cert``                          base64 DER or SHA-256
``"gcp"``                ``X-Client-Cert-Leaf``, ``X-Client-Cert-Hash``  Byte Sequence / SHA-256
``"cloudflare"``         ``Cf-Client-Cert-Der-Base64``,                 base64 DER / SHA-256
                         ``Cf-Client-Cert-Sha256``
``"cloudfront"``         ``CloudFront-Viewer-Cert-Pem``,                URL-encoded PEM / SHA-256
                         ``CloudFront-Viewer-Cert-Sha256``
``"azure_app_service"``  ``X-ARR-ClientCert``                           base64 DER
``"kong"``               ``X-Client-Cert``                              URL-encoded PEM
=======================  =============================================  ============================

``header=`` replaces the default name(s) with the one the proxy is configured to set (for
nginx, haproxy, gcp, kong and azure_app_service the name is the operator's choice anyway).
When a source reads several headers, every one present must name the same certificate.
Digest-only forms yield the ``x5t#S256`` but no certificate; a SHA-1 fingerprint is
refused (RFC 8705 §3.1 binds to SHA-256).

**Trust.** Call these only for requests whose *transport* peer is your proxy, and make
the proxy overwrite or strip every header name the source reads: a header that reached
the proxy from the client and passed through is the attacker's (RFC 9440 §4). Under WSGI,
``X_SSL_Client_Cert`` and ``X-SSL-Client-Cert`` are the same ``HTTP_X_SSL_CLIENT_CERT``:
strip underscore variants at the proxy too.

Every malformed, repeated or oversized value raises ``ForwardedCertificateError``, an
``InvalidRequest`` (``invalid_request``, HTTP 400); nothing else escapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from cryptography import x509

from tokenlib.integrations.certs import _envoy, _rfc9440, _traefik
from tokenlib.integrations.certs._aws import ALB, lambda_event_certificate
from tokenlib.integrations.certs._azure import APP_SERVICE
from tokenlib.integrations.certs._cloud import CLOUDFLARE, CLOUDFRONT, GCP
from tokenlib.integrations.certs._common import (
    MAX_CHAIN_LENGTH,
    MAX_VALUE_LENGTH,
    MAX_XFCC_ELEMENTS,
    ForwardedCertificate,
    ForwardedCertificateError,
    HeaderInput,
)
from tokenlib.integrations.certs._envoy import XfccElement, element_certificate, parse_xfcc
from tokenlib.integrations.certs._haproxy import HAPROXY
from tokenlib.integrations.certs._kong import KONG
from tokenlib.integrations.certs._nginx import NGINX

__all__ = [
    "DEFAULT_HEADERS",
    "MAX_CHAIN_LENGTH",
    "MAX_VALUE_LENGTH",
    "MAX_XFCC_ELEMENTS",
    "SOURCES",
    "ForwardedCertificate",
    "ForwardedCertificateError",
    "HeaderInput",
    "XfccElement",
    "client_cert_thumbprint",
    "client_cert_thumbprint_from_lambda_event",
    "client_certificate",
    "client_certificate_from_lambda_event",
    "forwarded_client_cert",
    "parse_xfcc",
    "xfcc_element_certificate",
]

_Reader = Callable[[HeaderInput, str | None], ForwardedCertificate | None]

_READERS: Final[Mapping[str, _Reader]] = {
    "rfc9440": _rfc9440.read,
    "envoy_xfcc": _envoy.read,
    "aws_alb": ALB.read,
    "traefik": _traefik.read,
    "nginx": NGINX.read,
    "haproxy": HAPROXY.read,
    "gcp": GCP.read,
    "cloudflare": CLOUDFLARE.read,
    "cloudfront": CLOUDFRONT.read,
    "azure_app_service": APP_SERVICE.read,
    "kong": KONG.read,
}

#: Every accepted ``source`` name.
SOURCES: Final = tuple(_READERS)

#: The header names each source reads when ``header=`` is not given.
DEFAULT_HEADERS: Final[Mapping[str, tuple[str, ...]]] = {
    "rfc9440": (_rfc9440.HEADER, _rfc9440.CHAIN_HEADER),
    "envoy_xfcc": (_envoy.HEADER,),
    "aws_alb": ALB.default_headers,
    "traefik": (_traefik.HEADER,),
    "nginx": NGINX.default_headers,
    "haproxy": HAPROXY.default_headers,
    "gcp": GCP.default_headers,
    "cloudflare": CLOUDFLARE.default_headers,
    "cloudfront": CLOUDFRONT.default_headers,
    "azure_app_service": APP_SERVICE.default_headers,
    "kong": KONG.default_headers,
}


def forwarded_client_cert(
    headers: HeaderInput, *, source: str, header: str | None = None
) -> ForwardedCertificate | None:
    """The client certificate ``source``'s proxy forwarded in ``headers``, or ``None``.

    ``headers`` is a mapping or an iterable of ``(name, value)`` pairs (``str`` or
    ``bytes``; ASGI ``scope["headers"]`` works as-is); names compare case-insensitively.
    ``header`` names the one header to read instead of the source's defaults.
    Raises ``ForwardedCertificateError`` (``invalid_request``) for a malformed value and
    ``ValueError`` for an unknown ``source`` (a programming error).
    """
    reader = _READERS.get(source)
    if reader is None:
        raise ValueError(f"unknown certificate source {source!r}; expected one of {SOURCES}")
    if header is not None and (not isinstance(header, str) or not header.strip()):
        raise ValueError("header= must be a non-empty header name")
    try:
        return reader(headers, header)
    except (ValueError, UnicodeError, IndexError, OverflowError) as exc:
        # Defence in depth: every decoder raises ForwardedCertificateError itself; a
        # stray low-level error still reaches the caller as invalid_request, never a 500.
        raise ForwardedCertificateError(
            f"the {source} client-certificate header could not be decoded",
            details={"check": "client_cert", "source": source, "problem": type(exc).__name__},
        ) from None


def client_cert_thumbprint(
    headers: HeaderInput, *, source: str, header: str | None = None
) -> str | None:
    """The RFC 8705 §3.1 ``x5t#S256`` (unpadded base64url SHA-256 of the DER leaf) of
    the forwarded client certificate, ``None`` when none was forwarded.

    Digest-only forms (XFCC ``Hash=``, CloudFront ``-Sha256``, GCP fingerprint, HAProxy
    ``sha2(256)``) are converted from hex or standard base64; SHA-1 is refused.
    """
    found = forwarded_client_cert(headers, source=source, header=header)
    return None if found is None else found.thumbprint


def client_certificate(
    headers: HeaderInput, *, source: str, header: str | None = None
) -> x509.Certificate | None:
    """The forwarded client certificate itself, ``None`` when absent *or* when the proxy
    forwarded only its digest (use ``client_cert_thumbprint`` for those)."""
    found = forwarded_client_cert(headers, source=source, header=header)
    return None if found is None else found.certificate


def client_cert_thumbprint_from_lambda_event(event: Mapping[str, object]) -> str | None:
    """The ``x5t#S256`` of the client certificate in an API Gateway (mutual TLS) Lambda
    proxy event: ``requestContext.identity.clientCert.clientCertPem`` (REST API) or
    ``requestContext.authentication.clientCert.clientCertPem`` (HTTP API); ``None`` if
    absent, ``ForwardedCertificateError`` if malformed."""
    found = lambda_event_certificate(event)
    return None if found is None else found.thumbprint


def client_certificate_from_lambda_event(event: Mapping[str, object]) -> x509.Certificate | None:
    """The client certificate of an API Gateway Lambda event (see
    ``client_cert_thumbprint_from_lambda_event``)."""
    found = lambda_event_certificate(event)
    return None if found is None else found.certificate


def xfcc_element_certificate(element: XfccElement) -> ForwardedCertificate | None:
    """The certificate of one ``parse_xfcc`` element (to read a hop other than the last,
    e.g. the one whose ``by`` is your ingress gateway's URI SAN)."""
    return element_certificate(element)
