"""Traefik ``passTLSClientCert`` → ``X-Forwarded-Tls-Client-Cert``.

The value is the PEM body of each client certificate without armour or newlines (that is,
plain base64 DER), several certificates comma-separated, leaf first
(traefik ``pkg/middlewares/passtlsclientcert/pass_tls_client_cert.go``). Up to v2.9.1 each
item was also ``url.QueryEscape``d (``+`` → ``%2B``, ``/`` → ``%2F``, ``=`` → ``%3D``); since
v2.9.2 (commit 2c550c2 "Remove raw cert escape") it is not. Both are accepted: base64
has no ``%``, so percent-decoding (``unquote``, ``+`` kept) is harmless to the new form.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote

from tokenlib.integrations.certs._common import (
    Format,
    ForwardedCertificate,
    HeaderInput,
    decode,
    fail,
    read_headers,
)

SOURCE: Final = "traefik"
HEADER: Final = "X-Forwarded-Tls-Client-Cert"


def read(headers: HeaderInput, header: str | None) -> ForwardedCertificate | None:
    """The leaf (first item) of the Traefik header, and the rest as its chain."""
    name = header or HEADER
    value = read_headers(headers, [name], SOURCE).get(name.lower())
    if value is None:
        return None
    if "%" in value:
        try:
            value = unquote(value, errors="strict")
        except UnicodeDecodeError:
            raise fail(SOURCE, name, "the percent-encoding is not UTF-8") from None
    if "-----BEGIN" in value:
        raise fail(SOURCE, name, "expected base64 DER items, found PEM armour")
    return decode(value, source=SOURCE, header=name, formats=(Format.DER_BASE64,), der_list=True)
