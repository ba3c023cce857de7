"""What every proxy adapter shares: reading header fields, bounding and decoding values.

A forwarded certificate arrives in one of five encodings (see the package docstring):
an RFC 9440 Byte Sequence, URL-encoded PEM, bare base64 DER, a SHA-256 digest (hex,
standard base64 or base64url), or an Envoy XFCC element (``_envoy``). Every decoder here
raises ``ForwardedCertificateError`` (an ``InvalidRequest``, ``invalid_request``, HTTP 400)
for a malformed value, and bounds the input before it parses anything.
"""

from __future__ import annotations

import base64
import binascii
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final, cast
from urllib.parse import unquote

from cryptography import x509

from tokenlib.errors import InvalidRequest
from tokenlib.jwk import b64url_encode
from tokenlib.mtls import cert_thumbprint, load_certificate, parse_client_cert_header

#: Largest header value read (checked before any decoding). A 4096-bit RSA leaf is ~1.5 KB
#: of DER, ~2.5 KB as URL-encoded PEM; a chain of ten such certificates stays under 32 KiB.
MAX_VALUE_LENGTH: Final = 65_536
#: Most certificates accepted in one chain-carrying value (PEM blocks, Traefik items,
#: XFCC ``Chain=``).
MAX_CHAIN_LENGTH: Final = 10
#: Most XFCC elements (one per hop) accepted in one ``x-forwarded-client-cert`` value.
MAX_XFCC_ELEMENTS: Final = 32

HeaderInput = Mapping[str, str] | Mapping[bytes, bytes] | Iterable[tuple[str | bytes, str | bytes]]

_RFC8705: Final = "RFC 8705 §3.1"
_HEX: Final = frozenset(string.hexdigits)
_B64_BODY: Final = re.compile(r"[A-Za-z0-9+/\-_]+={0,2}")
_PEM_BEGIN: Final = "-----BEGIN"


class ForwardedCertificateError(InvalidRequest):
    """A proxy's client-certificate header is malformed, repeated, too large, or holds a
    digest that is not SHA-256 (RFC 8705 §3.1 binds to SHA-256 only).

    ``details`` names the ``source``, the ``header`` and the ``problem``; it never holds
    certificate data or the raw value (both are attacker-controlled text).
    """


def fail(source: str, header: str, problem: str, **details: object) -> ForwardedCertificateError:
    """The error for ``problem`` in ``header`` (as read for ``source``)."""
    return ForwardedCertificateError(
        f"the {header} header ({source}) is malformed: {problem}",
        details={
            "check": "client_cert",
            "source": source,
            "header": header,
            "problem": problem,
            **details,
        },
    )


class Format(Enum):
    """The encodings a forwarded-certificate value can use."""

    RFC9440 = "RFC 9440 Byte Sequence (:base64 DER:)"
    PEM_URL = "URL-encoded PEM"
    DER_BASE64 = "base64 DER"
    SHA256 = "SHA-256 digest"


@dataclass(frozen=True, slots=True)
class ForwardedCertificate:
    """The client certificate a trusted proxy forwarded, as read by one adapter.

    ``thumbprint`` is its RFC 8705 §3.1 ``x5t#S256``. ``certificate`` is the leaf when
    the proxy forwarded the certificate itself, ``None`` when it forwarded only a
    SHA-256 digest. ``chain`` holds the certificates that followed the leaf in the same
    value (issuers, as sent), if any. ``source`` and ``header`` say where it was read.
    """

    thumbprint: str
    certificate: x509.Certificate | None
    chain: tuple[x509.Certificate, ...]
    source: str
    header: str


def _text(item: str | bytes, source: str, what: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, bytes | bytearray):
        return bytes(item).decode("latin-1")
    raise ForwardedCertificateError(
        f"header {what}s must be str or bytes, not {type(item).__name__}",
        details={"check": "client_cert", "source": source, "problem": f"{what} type"},
    )


def read_headers(headers: HeaderInput, names: Iterable[str], source: str) -> dict[str, str]:
    """The values of the wanted fields, keyed by the lower-cased name.

    Names compare case-insensitively (RFC 9110 §5.1). A wanted field that occurs more
    than once is refused: a certificate header is a singleton, and two lines mean a
    client-sent value survived next to the proxy's. Values over ``MAX_VALUE_LENGTH`` are
    refused before anything else reads them.
    """
    wanted = {name.lower(): name for name in names}
    items: Iterable[tuple[str | bytes, str | bytes]]
    if isinstance(headers, Mapping):
        items = headers.items()
    elif isinstance(cast(object, headers), str | bytes) or not isinstance(headers, Iterable):
        # The caller's mistake, not the peer's: a plain TypeError (see tokenlib.errors).
        raise TypeError(
            f"headers must be a mapping or (name, value) pairs, not {type(headers).__name__}"
        )
    else:
        items = headers
    found: dict[str, str] = {}
    for pair in items:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ForwardedCertificateError(
                "headers must be (name, value) pairs",
                details={"check": "client_cert", "source": source, "problem": "headers shape"},
            )
        name = _text(pair[0], source, "name").lower()
        if name not in wanted:
            continue
        if name in found:
            raise fail(
                source,
                wanted[name],
                "the field occurs more than once; a certificate header is a singleton",
            )
        value = _text(pair[1], source, "value")
        if len(value) > MAX_VALUE_LENGTH:
            raise fail(
                source,
                wanted[name],
                "the value is too large",
                length=len(value),
                limit=MAX_VALUE_LENGTH,
            )
        found[name] = value
    return found


def _b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, padding optional; ``ValueError`` if it is neither."""
    if _B64_BODY.fullmatch(text) is None:
        raise ValueError("not base64")
    if "-" in text or "_" in text:
        if "+" in text or "/" in text:
            raise ValueError("mixes the standard and URL-safe base64 alphabets")
        text = text.replace("-", "+").replace("_", "/")
    text = text.rstrip("=")
    if len(text) % 4 == 1:
        raise ValueError("impossible base64 length")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


def sha256_thumbprint(value: str, source: str, header: str) -> str:
    """The ``x5t#S256`` from a forwarded SHA-256 digest of the DER certificate.

    Accepts hex (64 digits, optionally ``:``-separated pairs, any case), standard base64
    (padded or not) and base64url. A 20-byte digest is SHA-1 and is refused: RFC 8705
    §3.1 binds to SHA-256, and a SHA-1 fingerprint cannot be converted.
    """
    text = value.strip(" \t")
    compact = text.replace(":", "") if ":" in text else text
    if ":" in text and not re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*", text):
        raise fail(source, header, "a ':'-separated fingerprint must be hex pairs")
    digest: bytes
    if compact and all(ch in _HEX for ch in compact) and len(compact) in (40, 64):
        digest = bytes.fromhex(compact)
    elif ":" in text:
        digest = bytes.fromhex(compact) if len(compact) % 2 == 0 else b""
    else:
        try:
            digest = _b64decode(compact)
        except ValueError:
            raise fail(
                source, header, "a certificate digest must be hex or base64 of SHA-256"
            ) from None
    if len(digest) == 20:
        raise fail(
            source,
            header,
            "the value is a SHA-1 fingerprint; x5t#S256 needs SHA-256 (RFC 8705 §3.1): "
            "forward the certificate or its SHA-256 digest instead",
            rfc=_RFC8705,
            digest_length=20,
        )
    if len(digest) != 32:
        raise fail(
            source,
            header,
            "the digest is not SHA-256 (32 bytes)",
            rfc=_RFC8705,
            digest_length=len(digest),
        )
    return b64url_encode(digest)


def pem_certificates(value: str, source: str, header: str) -> list[x509.Certificate]:
    """The certificates of a URL-encoded (or plain) PEM value, in order.

    Percent-decoding keeps ``+`` literal (``urllib.parse.unquote``, never ``unquote_plus``):
    AWS ALB leaves the base64 ``+`` unescaped, and form decoding would turn it into a space.
    """
    try:
        text = unquote(value, errors="strict") if "%" in value else value
    except UnicodeDecodeError:
        raise fail(source, header, "the percent-encoding is not UTF-8") from None
    count = text.count(_PEM_BEGIN)
    if count == 0:
        raise fail(source, header, "no PEM certificate found")
    if count > MAX_CHAIN_LENGTH:
        raise fail(
            source,
            header,
            "the PEM chain has too many certificates",
            count=count,
            limit=MAX_CHAIN_LENGTH,
        )
    blocks = re.findall(
        r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, flags=re.DOTALL
    )
    if len(blocks) != count:
        raise fail(source, header, "a PEM block is not a complete CERTIFICATE block")
    rest = re.sub(
        r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", "", text, flags=re.DOTALL
    )
    if rest.strip(" \t\r\n,"):
        raise fail(source, header, "unexpected text outside the PEM blocks")
    certs: list[x509.Certificate] = []
    for index, body in enumerate(blocks):
        compact = "".join(body.split())
        if not compact or not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", compact):
            raise fail(source, header, "a PEM block is not base64", item=index)
        certs.append(
            der_certificate(_b64_or_fail(compact, source, header, index), source, header, index)
        )
    return certs


def _b64_or_fail(text: str, source: str, header: str, index: int | None) -> bytes:
    try:
        return _b64decode(text)
    except ValueError:
        where = {} if index is None else {"item": index}
        raise fail(source, header, "the value is not valid base64", **where) from None


def der_certificate(
    der: bytes, source: str, header: str, index: int | None = None
) -> x509.Certificate:
    """One DER certificate (the core's strict loader); ``ForwardedCertificateError`` if not."""
    if der.lstrip().startswith(b"-----BEGIN"):
        # load_certificate would accept PEM here; base64 of PEM text is not DER.
        raise fail(source, header, "the value is base64 of PEM text, not of DER")
    try:
        return load_certificate(der)
    except (ValueError, TypeError):
        where: dict[str, object] = {"der_length": len(der)}
        if index is not None:
            where["item"] = index
        raise fail(source, header, "the value is not a DER X.509 certificate", **where) from None


def base64_der_certificates(
    value: str, source: str, header: str, *, allow_list: bool = False
) -> list[x509.Certificate]:
    """Bare base64 DER (no PEM armour); with ``allow_list`` a comma-separated chain."""
    parts = [part.strip(" \t") for part in value.split(",")] if allow_list else [value.strip()]
    if len(parts) > MAX_CHAIN_LENGTH:
        raise fail(
            source,
            header,
            "the chain has too many certificates",
            count=len(parts),
            limit=MAX_CHAIN_LENGTH,
        )
    certs: list[x509.Certificate] = []
    for index, part in enumerate(parts):
        if not part:
            raise fail(source, header, "an empty item in the certificate list", item=index)
        where = index if allow_list else None
        certs.append(
            der_certificate(_b64_or_fail(part, source, header, where), source, header, where)
        )
    return certs


def rfc9440_certificate(value: str, source: str, header: str) -> x509.Certificate:
    """An RFC 9440 §2.2 Byte Sequence, parsed by the core (``tokenlib.mtls``)."""
    try:
        return parse_client_cert_header(value, max_length=MAX_VALUE_LENGTH)
    except InvalidRequest as exc:
        problem = str(exc.details.get("problem", exc.description))
        raise fail(source, header, problem, rfc="RFC 9440 §2.2") from None


def _is_hex_digest(text: str) -> bool:
    compact = text.replace(":", "")
    return bool(compact) and all(ch in _HEX for ch in compact) and len(compact) in (40, 64)


def _looks_like_digest(text: str) -> bool:
    if _is_hex_digest(text):
        return True
    return len(text) <= 88 and _B64_BODY.fullmatch(text) is not None


def detect(value: str) -> Format:
    """Which encoding ``value`` uses (a guess a strict decoder then confirms)."""
    text = value.strip(" \t")
    if text.startswith(":"):
        return Format.RFC9440
    if _PEM_BEGIN in text or "%2D%2D%2D%2D%2DBEGIN" in text.upper():
        return Format.PEM_URL
    if _looks_like_digest(text):
        return Format.SHA256
    return Format.DER_BASE64


def decode(
    value: str,
    *,
    source: str,
    header: str,
    formats: tuple[Format, ...],
    der_list: bool = False,
) -> ForwardedCertificate | None:
    """Decode one header value in one of ``formats``; ``None`` for an empty value.

    Proxies that fill a header from a template (GCP, Cloudflare) send an empty value when
    the client presented no certificate; that is "absent", not malformed.
    """
    text = value.strip(" \t")
    if not text:
        return None
    found = detect(text)
    if found not in formats:
        if found is Format.SHA256 and _is_hex_digest(text):
            sha256_thumbprint(text, source, header)  # refuses SHA-1 with its own message
        if found is Format.SHA256 and Format.DER_BASE64 in formats:
            found = Format.DER_BASE64  # too short to be a certificate: the DER loader says so
        else:
            raise fail(
                source,
                header,
                f"expected {' or '.join(f.value for f in formats)}, found what looks like "
                f"{found.value}",
            )
    if found is Format.SHA256:
        return ForwardedCertificate(
            sha256_thumbprint(text, source, header), None, (), source, header
        )
    certs: list[x509.Certificate]
    if found is Format.RFC9440:
        certs = [rfc9440_certificate(text, source, header)]
    elif found is Format.PEM_URL:
        certs = pem_certificates(text, source, header)
    else:
        certs = base64_der_certificates(text, source, header, allow_list=der_list)
    return from_certificates(certs, source, header)


def from_certificates(
    certs: list[x509.Certificate], source: str, header: str
) -> ForwardedCertificate:
    """The result for a leaf-first certificate list."""
    leaf = certs[0]
    return ForwardedCertificate(cert_thumbprint(leaf), leaf, tuple(certs[1:]), source, header)


def agree(results: list[ForwardedCertificate], source: str) -> ForwardedCertificate | None:
    """One result from several headers of the same proxy: they must name the same
    certificate; a full certificate is preferred over a digest."""
    if not results:
        return None
    first = results[0]
    for other in results[1:]:
        if other.thumbprint != first.thumbprint:
            raise ForwardedCertificateError(
                f"the {first.header} and {other.header} headers ({source}) name different "
                "certificates",
                details={
                    "check": "client_cert",
                    "source": source,
                    "header": f"{first.header}, {other.header}",
                    "problem": "headers disagree",
                    "thumbprints": [first.thumbprint, other.thumbprint],
                },
            )
    with_cert = [r for r in results if r.certificate is not None]
    if not with_cert:
        return first
    return max(with_cert, key=lambda r: len(r.chain))


@dataclass(frozen=True, slots=True)
class Spec:
    """An adapter that reads fixed headers, each in known encodings.

    ``headers`` are the (name, formats) pairs read by default (all set by the same proxy
    feature; when several are present they must agree). ``header=`` replaces them with one
    name read in ``custom_formats``. ``der_list`` accepts a comma-separated DER chain.
    """

    source: str
    headers: tuple[tuple[str, tuple[Format, ...]], ...]
    custom_formats: tuple[Format, ...]
    der_list: bool = False

    @property
    def default_headers(self) -> tuple[str, ...]:
        """The header names read when ``header=`` is not given."""
        return tuple(name for name, _ in self.headers)

    def read(self, headers: HeaderInput, header: str | None) -> ForwardedCertificate | None:
        """The forwarded certificate, ``None`` when none of the headers is present."""
        pairs = self.headers if header is None else ((header, self.custom_formats),)
        values = read_headers(headers, [name for name, _ in pairs], self.source)
        results: list[ForwardedCertificate] = []
        for name, formats in pairs:
            value = values.get(name.lower())
            if value is None:
                continue
            result = decode(
                value, source=self.source, header=name, formats=formats, der_list=self.der_list
            )
            if result is not None:
                results.append(result)
        return agree(results, self.source)
