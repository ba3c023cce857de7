"""RFC 9440 ``Client-Cert`` / ``Client-Cert-Chain``, parsed by the core (``tokenlib.mtls``).

``Client-Cert`` is one RFC 8941 Byte Sequence of the DER leaf (RFC 9440 §2.2);
``Client-Cert-Chain`` an RFC 8941 List of Byte Sequences of the rest of the chain, without
the leaf (§2.3). Senders: any RFC 9440 proxy, Cloudflare's ``cf.tls_client_auth.cert_rfc9440``
fields, GCP's ``{client_cert_leaf}``, CloudFront's ``Client-Cert`` option.
"""

from __future__ import annotations

from typing import Final

from cryptography import x509

from tokenlib.errors import InvalidRequest
from tokenlib.integrations.certs._common import (
    MAX_CHAIN_LENGTH,
    MAX_VALUE_LENGTH,
    ForwardedCertificate,
    HeaderInput,
    fail,
    read_headers,
    rfc9440_certificate,
)
from tokenlib.mtls import cert_thumbprint, parse_client_cert_chain_header

SOURCE: Final = "rfc9440"
HEADER: Final = "Client-Cert"
CHAIN_HEADER: Final = "Client-Cert-Chain"


def read(headers: HeaderInput, header: str | None) -> ForwardedCertificate | None:
    """The ``Client-Cert`` leaf (and, with the default name, ``Client-Cert-Chain``)."""
    name = header or HEADER
    names = [name] if header else [HEADER, CHAIN_HEADER]
    values = read_headers(headers, names, SOURCE)
    value = values.get(name.lower())
    if value is None or not value.strip(" \t"):
        return None
    leaf = rfc9440_certificate(value, SOURCE, name)
    chain_value = values.get(CHAIN_HEADER.lower()) if header is None else None
    chain: tuple[x509.Certificate, ...] = ()
    if chain_value and chain_value.strip(" \t"):
        if chain_value.count(",") + 1 > MAX_CHAIN_LENGTH:
            raise fail(
                SOURCE, CHAIN_HEADER, "the chain has too many certificates", limit=MAX_CHAIN_LENGTH
            )
        try:
            chain = tuple(parse_client_cert_chain_header(chain_value, max_length=MAX_VALUE_LENGTH))
        except InvalidRequest as exc:
            problem = str(exc.details.get("problem", exc.description))
            raise fail(SOURCE, CHAIN_HEADER, problem, rfc="RFC 9440 §2.3") from None
    return ForwardedCertificate(cert_thumbprint(leaf), leaf, chain, SOURCE, name)
