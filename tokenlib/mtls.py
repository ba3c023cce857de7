"""Certificate-bound access tokens (RFC 8705) and the ``Client-Cert`` fields (RFC 9440).

* ``cert_thumbprint``: the ``x5t#S256`` of a certificate, unpadded base64url of the
  SHA-256 of its DER encoding (RFC 8705 §3.1).
* ``verify_certificate_binding``: the resource server's RFC 8705 §3 check that the
  certificate of the mutual-TLS connection is the one the token's ``cnf.x5t#S256``
  names. A mismatch, or no certificate at all, is ``invalid_token`` (HTTP 401); the
  explain view shows the claimed and the computed thumbprint (never certificate data).
* ``parse_client_cert_header`` / ``format_client_cert_header`` and the ``_chain_``
  pair: RFC 9440 §2, by which a TLS-terminating reverse proxy forwards the client
  certificate. ``Client-Cert`` is one RFC 8941 Byte Sequence (``:base64-DER:``, standard
  base64, §3.3.5) and must not be a list or repeated; ``Client-Cert-Chain`` is an RFC 8941
  List of Byte Sequences. Parsing is strict and raises ``InvalidRequest`` saying what is
  wrong and where (``details["check"]`` is ``"client_cert"``).

Only accept these fields from a trusted proxy that strips them from incoming requests
(RFC 9440 §2.4 and §4: header injection "does not fail safe").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tokenlib.claims import AccessToken
from tokenlib.errors import InvalidRequest, InvalidToken
from tokenlib.jwk import b64url_encode

__all__ = [
    "CertificateInput",
    "cert_thumbprint",
    "format_client_cert_chain_header",
    "format_client_cert_header",
    "load_certificate",
    "parse_client_cert_chain_header",
    "parse_client_cert_header",
    "verify_certificate_binding",
]

CertificateInput = x509.Certificate | bytes | bytearray | str

#: Bound on one ``Client-Cert`` value, checked before decoding (a large RSA certificate
#: is ~2 KB of DER, ~3 KB of base64).
MAX_CLIENT_CERT_LENGTH: Final = 16_384
#: Bound on the whole ``Client-Cert-Chain`` value.
MAX_CLIENT_CERT_CHAIN_LENGTH: Final = 65_536

_BASE64: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_OWS: Final = " \t"
_RFC_CERT: Final = "RFC 9440 §2.2"
_RFC_CHAIN: Final = "RFC 9440 §2.3"


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """One DER tag-length-value at ``pos``: (tag, content offset, content length)."""
    tag = data[pos]
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        size = first & 0x7F
        if not 1 <= size <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, length


def _serial_is_not_positive(der: bytes) -> bool:
    """True if the certificate's serialNumber is zero or negative (RFC 5280 §4.1.2.2).

    ``cryptography`` only warns about such certificates (and will refuse them in a future
    release); we refuse them now, before parsing, so the outcome does not depend on the
    process's warning filters. Anything structurally odd returns False and is left to
    the real parser to reject.
    """
    try:
        tag, pos, _ = _tlv(der, 0)  # Certificate ::= SEQUENCE
        if tag != 0x30:
            return False
        tag, pos, _ = _tlv(der, pos)  # tbsCertificate ::= SEQUENCE
        if tag != 0x30:
            return False
        tag, start, length = _tlv(der, pos)
        if tag == 0xA0:  # [0] EXPLICIT version
            tag, start, length = _tlv(der, start + length)
        if tag != 0x02 or length == 0:
            return False
        return int.from_bytes(der[start : start + length], "big", signed=True) <= 0
    except (IndexError, ValueError):
        return False


def _load_der(der: bytes) -> x509.Certificate:
    if _serial_is_not_positive(der):
        raise ValueError(
            "not a DER X.509 certificate: its serial number is not positive (RFC 5280 §4.1.2.2)"
        )
    try:
        return x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion) as exc:
        raise ValueError(f"not a DER X.509 certificate: {exc}") from None


_PEM_BLOCK: Final = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]*?)\s*-----END CERTIFICATE-----"
)


def load_certificate(cert: CertificateInput) -> x509.Certificate:
    """A ``cryptography`` certificate from itself, DER bytes or PEM (bytes or str).

    Raises ``ValueError`` if the data is not exactly one X.509 certificate.
    """
    if isinstance(cert, x509.Certificate):
        return cert
    if isinstance(cert, str):
        try:
            data = cert.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("not a PEM X.509 certificate: non-ASCII text") from None
    elif isinstance(cert, bytes | bytearray):
        data = bytes(cert)
    else:
        raise TypeError(
            f"a certificate must be an x509.Certificate, DER or PEM, not {type(cert).__name__}"
        )
    if not data.lstrip().startswith(b"-----BEGIN"):
        return _load_der(data)
    blocks = _PEM_BLOCK.findall(data)
    if len(blocks) != 1:
        raise ValueError(
            f"not a PEM X.509 certificate: expected one PEM certificate, found {len(blocks)}"
        )
    try:
        der = base64.b64decode(b"".join(blocks[0].split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not a PEM X.509 certificate: bad base64") from None
    return _load_der(der)


def cert_thumbprint(cert: CertificateInput) -> str:
    """The RFC 8705 §3.1 ``x5t#S256``: base64url(SHA-256(DER certificate)), unpadded.

    Accepts an ``x509.Certificate``, DER bytes or PEM (bytes or str). Raises
    ``ValueError`` if the input is not a certificate.
    """
    if isinstance(cert, x509.Certificate):
        return b64url_encode(cert.fingerprint(hashes.SHA256()))
    if isinstance(cert, bytes | bytearray) and not bytes(cert).lstrip().startswith(b"-----BEGIN"):
        _load_der(bytes(cert))  # refuse anything that is not one DER certificate
        return b64url_encode(hashlib.sha256(bytes(cert)).digest())
    der = load_certificate(cert).public_bytes(serialization.Encoding.DER)
    return b64url_encode(hashlib.sha256(der).digest())


def _bad(header: str, problem: str, rfc: str, **details: object) -> InvalidRequest:
    return InvalidRequest(
        f"the {header} header is malformed: {problem}",
        details={
            "check": "client_cert",
            "header": header,
            "problem": problem,
            "rfc": rfc,
            **details,
        },
    )


def _as_text(value: object, header: str, rfc: str) -> str:
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise _bad(header, "it contains non-ASCII bytes", rfc) from None
    if isinstance(value, str):
        return value
    raise _bad(header, f"expected a string, got {type(value).__name__}", rfc)


def _byte_sequence(
    text: str, pos: int, header: str, rfc: str, index: int | None
) -> tuple[bytes, int]:
    """Parse one RFC 8941 §4.2.7 Byte Sequence at ``text[pos]``; return (bytes, next pos)."""
    where: dict[str, object] = {"offset": pos}
    if index is not None:
        where["item"] = index
    if pos >= len(text) or text[pos] != ":":
        found = "end of value" if pos >= len(text) else repr(text[pos])
        raise _bad(header, f"expected ':' to open a Byte Sequence, found {found}", rfc, **where)
    end = text.find(":", pos + 1)
    if end < 0:
        raise _bad(header, "the Byte Sequence has no closing ':'", rfc, **where)
    body = text[pos + 1 : end]
    if _BASE64.fullmatch(body) is None:
        bad_at = next(
            (
                i
                for i, ch in enumerate(body)
                if not (ch.isascii() and (ch.isalnum() or ch in "+/="))
            ),
            None,
        )
        problem = (
            "the Byte Sequence holds a character outside standard base64"
            if bad_at is not None
            else "base64 padding '=' is misplaced"
        )
        if bad_at is not None:
            where["bad_character_at"] = pos + 1 + bad_at
        raise _bad(header, problem, rfc, **where)
    # RFC 8941 §4.2.7: parsers SHOULD NOT fail when '=' padding is missing.
    padded = body + "=" * (-len(body) % 4) if "=" not in body else body
    try:
        data = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(header, "the Byte Sequence is not valid base64", rfc, **where) from None
    if not data:
        raise _bad(header, "the Byte Sequence is empty", rfc, **where)
    return data, end + 1


def _certificate(der: bytes, header: str, rfc: str, index: int | None) -> x509.Certificate:
    try:
        return _load_der(der)
    except ValueError:
        where: dict[str, object] = {"der_length": len(der)}
        if index is not None:
            where["item"] = index
        raise _bad(header, "the value is not a DER X.509 certificate", rfc, **where) from None


def _single_field(value: object, header: str, rfc: str) -> str:
    if isinstance(value, list | tuple):
        if len(value) != 1:
            raise _bad(
                header,
                f"the field occurs {len(value)} times; it is a singleton",
                rfc,
                occurrences=len(value),
            )
        value = value[0]
    return _as_text(value, header, rfc)


def parse_client_cert_header(
    value: str | bytes | Sequence[str], *, max_length: int = MAX_CLIENT_CERT_LENGTH
) -> x509.Certificate:
    """The certificate in an RFC 9440 §2.2 ``Client-Cert`` field value.

    The value is one RFC 8941 Byte Sequence of a DER certificate; surrounding spaces are
    ignored. A list, a repeated field (pass every field line as a sequence to detect it),
    parameters, non-base64 characters or non-certificate content raise ``InvalidRequest``.
    """
    header = "Client-Cert"
    text = _single_field(value, header, _RFC_CERT)
    if len(text) > max_length:
        raise _bad(header, "the value is too large", _RFC_CERT, length=len(text), limit=max_length)
    text = text.strip(_OWS)
    der, pos = _byte_sequence(text, 0, header, _RFC_CERT, None)
    rest = text[pos:].lstrip(_OWS)
    if rest.startswith(","):
        raise _bad(
            header,
            "the value is a list; Client-Cert holds exactly one certificate",
            _RFC_CERT,
            offset=pos,
        )
    if rest.startswith(";"):
        raise _bad(header, "parameters are not accepted on Client-Cert", _RFC_CERT, offset=pos)
    if rest:
        raise _bad(header, "unexpected characters after the Byte Sequence", _RFC_CERT, offset=pos)
    return _certificate(der, header, _RFC_CERT, None)


def parse_client_cert_chain_header(
    value: str | bytes | Sequence[str], *, max_length: int = MAX_CLIENT_CERT_CHAIN_LENGTH
) -> list[x509.Certificate]:
    """The certificates of an RFC 9440 §2.3 ``Client-Cert-Chain`` field, in order.

    An RFC 8941 List of Byte Sequences; several field lines (pass them as a sequence)
    are one list, joined in order (RFC 8941 §3.1). An empty value is an empty list.
    Inner lists, parameters, tokens or a trailing comma raise ``InvalidRequest``.
    """
    header = "Client-Cert-Chain"
    if isinstance(value, list | tuple):
        text = ", ".join(_as_text(v, header, _RFC_CHAIN) for v in value)
    else:
        text = _as_text(value, header, _RFC_CHAIN)
    if len(text) > max_length:
        raise _bad(header, "the value is too large", _RFC_CHAIN, length=len(text), limit=max_length)
    text = text.strip(_OWS)
    certs: list[x509.Certificate] = []
    pos = 0
    while pos < len(text):
        index = len(certs)
        der, pos = _byte_sequence(text, pos, header, _RFC_CHAIN, index)
        certs.append(_certificate(der, header, _RFC_CHAIN, index))
        while pos < len(text) and text[pos] in _OWS:
            pos += 1
        if pos >= len(text):
            break
        if text[pos] == ";":
            raise _bad(
                header,
                "parameters are not accepted on a chain item",
                _RFC_CHAIN,
                offset=pos,
                item=index,
            )
        if text[pos] != ",":
            raise _bad(
                header, "expected ',' between list members", _RFC_CHAIN, offset=pos, item=index
            )
        pos += 1
        while pos < len(text) and text[pos] in _OWS:
            pos += 1
        if pos >= len(text):
            raise _bad(header, "the list ends with a trailing comma", _RFC_CHAIN, offset=pos)
    return certs


def _der(cert: CertificateInput) -> bytes:
    return load_certificate(cert).public_bytes(serialization.Encoding.DER)


def format_client_cert_header(cert: CertificateInput) -> str:
    """The ``Client-Cert`` value for ``cert``: ``:`` standard base64 of the DER ``:``."""
    return ":" + base64.b64encode(_der(cert)).decode("ascii") + ":"


def format_client_cert_chain_header(certs: Sequence[CertificateInput]) -> str:
    """The ``Client-Cert-Chain`` value for ``certs`` (an RFC 8941 List, in TLS order)."""
    return ", ".join(format_client_cert_header(cert) for cert in certs)


def verify_certificate_binding(token: AccessToken, client_cert: CertificateInput | None) -> str:
    """Check that ``client_cert`` is the certificate ``token`` is bound to (RFC 8705 §3).

    ``client_cert`` is the certificate of the mutual-TLS connection (from the TLS layer,
    or a trusted proxy's ``Client-Cert``). Returns its ``x5t#S256``. Raises
    ``InvalidToken`` (401) when the token is not certificate-bound, no certificate was
    presented, or the thumbprints differ; ``details`` holds ``claimed`` and ``computed``.
    """
    claimed = token.x5t_s256
    if claimed is None:
        raise InvalidToken(
            "the access token is not bound to a client certificate",
            details={"check": "x5t#S256", "claimed": None, "rfc": "RFC 8705 §3"},
        )
    if client_cert is None:
        raise InvalidToken(
            "the access token is certificate-bound but no client certificate was presented",
            details={
                "check": "x5t#S256",
                "claimed": claimed,
                "computed": None,
                "rfc": "RFC 8705 §3",
            },
        )
    try:
        computed = cert_thumbprint(client_cert)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise InvalidToken(
            "the presented client certificate could not be read",
            details={
                "check": "x5t#S256",
                "claimed": claimed,
                "computed": None,
                "rfc": "RFC 8705 §3",
            },
        ) from None
    if not hmac.compare_digest(computed.encode("ascii"), claimed.encode("ascii")):
        raise InvalidToken(
            "the access token is bound to a different client certificate",
            details={
                "check": "x5t#S256",
                "claimed": claimed,
                "computed": computed,
                "rfc": "RFC 8705 §3.1",
            },
        )
    return computed


_THUMBPRINT: Final = re.compile(r"\A[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]\Z")


def verify_thumbprint_binding(token: AccessToken, client_cert_thumbprint: str) -> str:
    """:func:`verify_certificate_binding` when only the certificate's hash is known.

    ``client_cert_thumbprint`` is the base64url SHA-256 of the DER client certificate
    (``x5t#S256``, 43 characters), as a trusted TLS-terminating proxy adapter forwards
    it. It is compared with ``cnf.x5t#S256`` in constant time (RFC 8705 §3). A value
    that is not a canonical SHA-256 thumbprint raises ``InvalidRequest``: the proxy
    sent something else, and guessing could bind the wrong certificate.
    """
    claimed = token.x5t_s256
    if claimed is None:
        raise InvalidToken(
            "the access token is not bound to a client certificate",
            details={"check": "x5t#S256", "claimed": None, "rfc": "RFC 8705 §3"},
        )
    if not isinstance(client_cert_thumbprint, str) or not _THUMBPRINT.match(client_cert_thumbprint):
        raise InvalidRequest(
            "the forwarded client certificate thumbprint is not a base64url SHA-256 value",
            details={
                "check": "x5t#S256",
                "claimed": claimed,
                "computed": None,
                "rfc": "RFC 8705 §3.1",
            },
        )
    if not hmac.compare_digest(client_cert_thumbprint.encode("ascii"), claimed.encode("ascii")):
        raise InvalidToken(
            "the access token is bound to a different client certificate",
            details={
                "check": "x5t#S256",
                "claimed": claimed,
                "computed": client_cert_thumbprint,
                "rfc": "RFC 8705 §3.1",
            },
        )
    return client_cert_thumbprint
