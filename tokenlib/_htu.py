"""The DPoP ``htu`` comparison form of an HTTP(S) URI (RFC 9449 §4.2, §4.3 check 9).

RFC 9449 §4.3 asks servers to apply syntax-based (RFC 3986 §6.2.2) and scheme-based
(RFC 3986 §6.2.3) normalisation before comparing ``htu``. :func:`normalize_htu` does:

* scheme and host to lower case; only ``http`` and ``https`` are accepted;
* the default port (80/443) and an empty port are dropped, leading zeros removed;
* an empty path becomes ``/``; percent-encoded unreserved characters are decoded,
  the remaining percent-escapes get upper-case hex digits; dot segments are removed;
* query and fragment are dropped (RFC 9449 §4.2: ``htu`` has none; §4.3: ignore them);
* an IPv6 literal becomes its canonical compressed form; non-ASCII path characters are
  UTF-8 percent-encoded (RFC 3987 §3.1);
* a host that is not ASCII (also after decoding percent-escapes) is *refused*: ``htu``
  is a URI (RFC 3986), whose hosts are ASCII; an internationalised domain travels as
  its IDNA A-label (``https://xn--fa-hia.example/``), which is what browsers and httpx
  send (UTS #46 / IDNA 2008: ``httpx.URL("https://faß.example/").raw_host`` is
  ``b"xn--fa-hia.example"``). tokenlib does not convert U-labels itself: the core has
  no UTS #46 mapping tables, and Python's built-in ``idna`` codec is IDNA 2003, which
  maps ``faß`` to ``fass`` — a different host. A-labels are compared as lower-case
  ASCII, like every other host.

Path case and a trailing slash are significant and kept. Anything that is not a
well-formed absolute http(s) URI is refused with :class:`ValueError` naming the
problem: userinfo (RFC 9110 §4.2.4 deprecates it; it also launders hosts), whitespace
or control characters, a backslash, invalid percent-escapes, a bad port, or a host
that is not a DNS name / IPv4 / IPv6 literal (e.g. a ``Host`` value carrying a path
or query — the auth0 node-oauth2-jwt-bearer#244 laundering trick).
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Final

from tokenlib._cache import register_cache

__all__ = ["normalize_htu", "normalize_server_url"]

_URI: Final = re.compile(
    r"\A([A-Za-z][A-Za-z0-9+.\-]*):(?://([^/?#]*))?([^?#]*)(?:\?[^#]*)?(?:#.*)?\Z", re.S
)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX: Final = frozenset("0123456789abcdefABCDEF")
# RFC 3986 pchar without '%' (handled separately) plus '/'.
_PATH_CHARS: Final = _UNRESERVED | frozenset("!$&'()*+,;=:@/")
_HOST_LABEL: Final = re.compile(r"\A[a-z0-9_]([a-z0-9_\-]*[a-z0-9_])?\Z")
_FORBIDDEN: Final = re.compile(r"[\x00-\x20\x7f\\]")
_MAX_URL: Final = 8192
_MAX_CACHED: Final = 1024


def normalize_htu(url: str) -> str:
    """The RFC 3986 §6.2.2/§6.2.3 normal form of ``url`` without query and fragment.

    Raises ``ValueError`` with the reason when ``url`` is not a well-formed absolute
    http(s) URI.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    return _normalize(url)


def normalize_server_url(url: str) -> str:
    """:func:`normalize_htu` memoised for the server's own request URLs (bounded, and
    only for short URLs, so attacker-chosen paths cannot grow memory much)."""
    if len(url) <= _MAX_CACHED:
        return _normalize_cached(url)
    return _normalize(url)


def _normalize(url: str) -> str:
    if len(url) > _MAX_URL:
        raise ValueError(f"URL longer than {_MAX_URL} characters")
    if _FORBIDDEN.search(url):
        raise ValueError("URL contains whitespace, a control character or a backslash")
    match = _URI.match(url)
    if match is None:
        raise ValueError("not an absolute URI")
    scheme_raw, authority, path = match.groups()
    scheme = scheme_raw.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"scheme {scheme!r} is not http or https")
    if authority is None or authority == "":
        raise ValueError("URI has no authority (host)")
    if "@" in authority:
        raise ValueError("userinfo is not allowed in an http(s) URI (RFC 9110 §4.2.4)")
    host, port = _split_host_port(authority)
    host = _normalize_host(host)
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}{_normalize_path(path)}"


def _split_host_port(authority: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 literal")
        host, rest = authority[: end + 1], authority[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("unexpected characters after IPv6 literal")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_raw = authority.rpartition(":")
        if not sep:
            host, port_text = authority, None
        else:
            port_text = port_text_raw
    if port_text is None or port_text == "":
        return host, None  # RFC 3986 §6.2.3: an empty port is the default port
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"port {port_text!r} is not a number")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    return host, port


def _normalize_host(host: str) -> str:
    if not host:
        raise ValueError("empty host")
    if host.startswith("["):
        inner = host[1:-1]
        if "%" in inner or inner[:1] in ("v", "V"):
            raise ValueError("IPv6 zone identifiers and IPvFuture literals are not supported")
        try:
            return f"[{ipaddress.IPv6Address(inner).compressed}]"
        except ValueError:
            raise ValueError(f"invalid IPv6 literal {host!r}") from None
    if "%" in host:
        host = _decode_host_escapes(host)
    if not host.isascii():
        raise ValueError(
            "host is not ASCII: htu is a URI (RFC 3986), so an internationalised host "
            "must be sent as its IDNA A-label (xn--...), as browsers and httpx do; "
            "tokenlib does not map Unicode hosts itself (UTS #46 needs tables the core "
            "does not carry, and Python's IDNA 2003 codec maps e.g. ß to ss)"
        )
    host = host.lower()
    labels = host.split(".")
    if labels[-1] == "":
        labels = labels[:-1]  # a fully-qualified trailing dot is kept below
    if not labels or any(_HOST_LABEL.match(label) is None for label in labels):
        raise ValueError(f"host {host!r} is not a DNS name or IP address")
    return host


def _decode_host_escapes(host: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(host):
        ch = host[i]
        if ch == "%":
            pair = host[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise ValueError("invalid percent-escape in host")
            raw.append(int(pair, 16))
            i += 3
        else:
            raw.extend(ch.encode("utf-8"))
            i += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("percent-escapes in host are not UTF-8") from None


def _normalize_path(path: str) -> str:
    if not path:
        return "/"  # RFC 3986 §6.2.3
    out: list[str] = []
    i = 0
    n = len(path)
    while i < n:
        ch = path[i]
        if ch == "%":
            pair = path[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise ValueError("invalid percent-escape in path")
            decoded = chr(int(pair, 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + pair.upper())
            i += 3
            continue
        if ch in _PATH_CHARS:
            out.append(ch)
        elif ord(ch) > 0x7F:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
        else:
            raise ValueError(f"character {ch!r} is not allowed in a URI path")
        i += 1
    return _remove_dot_segments("".join(out))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 on an absolute path (segment-wise, equivalent to the algorithm)."""
    if "." not in path:
        return path
    segments = path.split("/")
    out: list[str] = []
    for index, segment in enumerate(segments[1:], start=1):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


_CACHED_URLS: Final = 2048
_normalize_cached = lru_cache(maxsize=_CACHED_URLS)(_normalize)
register_cache("htu.server_urls", _normalize_cached, _CACHED_URLS)
