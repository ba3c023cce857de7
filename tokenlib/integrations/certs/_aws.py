"""AWS: Application Load Balancer mTLS headers and the API Gateway Lambda event.

ALB (docs.aws.amazon.com/elasticloadbalancing/latest/application/mutual-authentication.html):
*verify* mode sends ``X-Amzn-Mtls-Clientcert-Leaf`` (the leaf), *passthrough* mode
``X-Amzn-Mtls-Clientcert`` (the whole chain the client sent, leaf first, not validated).
Both are URL-encoded PEM in which ``+``, ``=`` and ``/`` stay literal: decoding them as a
form (``+`` → space) corrupts the certificate, so ``unquote`` (never ``unquote_plus``).

API Gateway with mutual TLS hands a Lambda function the client certificate in the event:
``requestContext.identity.clientCert.clientCertPem`` (REST API, payload 1.0) or
``requestContext.authentication.clientCert.clientCertPem`` (HTTP API, payload 2.0), a PEM
string (docs.aws.amazon.com/apigateway/latest/developerguide/rest-api-mutual-tls.html).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from cryptography import x509

from tokenlib.integrations.certs._common import (
    MAX_VALUE_LENGTH,
    Format,
    ForwardedCertificate,
    ForwardedCertificateError,
    Spec,
    fail,
    from_certificates,
    pem_certificates,
)

ALB: Final = Spec(
    source="aws_alb",
    headers=(
        ("X-Amzn-Mtls-Clientcert-Leaf", (Format.PEM_URL,)),
        ("X-Amzn-Mtls-Clientcert", (Format.PEM_URL,)),
    ),
    custom_formats=(Format.PEM_URL,),
)

LAMBDA_SOURCE: Final = "aws_api_gateway"
_PATHS: Final = (
    ("requestContext", "identity", "clientCert", "clientCertPem"),
    ("requestContext", "authentication", "clientCert", "clientCertPem"),
)


def _lookup(event: Mapping[str, object], path: tuple[str, ...]) -> object:
    node: object = event
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
        if node is None:
            return None
    return node


def lambda_event_certificate(event: object) -> ForwardedCertificate | None:
    """The client certificate of an API Gateway Lambda proxy event (REST or HTTP API).

    ``None`` when the event carries no client certificate; ``ForwardedCertificateError``
    if ``clientCertPem`` is not one PEM certificate, or the two places disagree.
    """
    if not isinstance(event, Mapping):
        raise ForwardedCertificateError(
            "the Lambda event must be a mapping (the decoded JSON event)",
            details={"check": "client_cert", "source": LAMBDA_SOURCE, "problem": "event type"},
        )
    results: list[ForwardedCertificate] = []
    for path in _PATHS:
        where = ".".join(path)
        pem = _lookup(event, path)
        if pem is None:
            continue
        if not isinstance(pem, str):
            raise fail(LAMBDA_SOURCE, where, f"expected a PEM string, got {type(pem).__name__}")
        if not pem.strip():
            continue
        if len(pem) > MAX_VALUE_LENGTH:
            raise fail(LAMBDA_SOURCE, where, "the value is too large", limit=MAX_VALUE_LENGTH)
        certs: list[x509.Certificate] = pem_certificates(pem, LAMBDA_SOURCE, where)
        if len(certs) != 1:
            raise fail(LAMBDA_SOURCE, where, "expected exactly one PEM certificate")
        results.append(from_certificates(certs, LAMBDA_SOURCE, where))
    if len(results) == 2 and results[0].thumbprint != results[1].thumbprint:
        raise fail(
            LAMBDA_SOURCE,
            "requestContext",
            "identity and authentication name different certificates",
        )
    return results[0] if results else None
