"""The compact-JWS layer of DPoP proofs: strict parsing, header checks, signatures.

Kept apart from :mod:`tokenlib.dpop` (which holds the RFC 9449 claim checks) and fast
on purpose: a proof is verified on every request. Strictness matches
:func:`tokenlib._jws.parse` and goes further: only the base64url alphabet, canonical
encodings (unused trailing bits zero), no duplicate JSON members, no non-standard
constants, no ``crit``/``b64``. Validated headers are cached by their exact segment,
so a client's repeated ``jwk`` is decoded and loaded once. Signatures are checked by
:func:`tokenlib._jws.verify_fitted`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import rsa

from tokenlib import _jws
from tokenlib._cache import BoundedCache, process_cache
from tokenlib.errors import InvalidDPoPProof
from tokenlib.jwk import MAX_RSA_BITS, PublicKey, alg_matches_key, b64url_decode, load_public_jwk

__all__ = [
    "DPOP_TYP",
    "RFC_4_3",
    "ParsedHeader",
    "b64decode",
    "check_header",
    "fail",
    "parse_json",
]

DPOP_TYP: Final = "dpop+jwt"
RFC_4_3: Final = "RFC 9449 §4.3"

_MAX_CACHED_HEADER: Final = 2048


# ------------------------------------------------------------------------ verification


@dataclass(frozen=True, slots=True)
class ParsedHeader:
    """A validated proof header and the key it carries (cached per header segment)."""

    header: Mapping[str, Any]
    alg: str
    key: PublicKey
    jkt: str
    rsa_bits: int = 0


# Validated proof headers by their exact segment (decoding is deterministic, and only
# headers that passed every header check are kept, read-only: see ``_freeze``).
_PARSED_HEADERS: Final[BoundedCache[str, ParsedHeader]] = process_cache("dpop.proof_headers", 4096)


def fail(description: str, check: str, **details: object) -> InvalidDPoPProof:
    return InvalidDPoPProof(description, details={"check": check, **details, "rfc": RFC_4_3})


def b64decode(segment: str, what: str) -> bytes:
    """Strict, canonical, unpadded base64url (:func:`tokenlib.jwk.b64url_decode`), with
    the proof's error."""
    try:
        return b64url_decode(segment)
    except ValueError as exc:
        raise fail(f"the DPoP proof {what} is not canonical base64url: {exc}", "syntax") from None


def parse_json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = _jws.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise fail(f"the DPoP proof {what} is not valid JSON: {exc}", "syntax") from None
    if not isinstance(value, dict):
        raise fail(f"the DPoP proof {what} is not a JSON object", "syntax")
    return value


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def check_header(
    segment: str, algorithms: Sequence[str], max_rsa_bits: int = MAX_RSA_BITS
) -> ParsedHeader:
    """Checks 2 (header part), 4, 5 and 7 of RFC 9449 §4.3 on the header segment.

    An RSA ``jwk`` must have ``e`` = 65537 and a 2048–8192-bit modulus
    (:func:`tokenlib.jwk.load_public_jwk`, checked before the key is built) and at most
    ``max_rsa_bits`` (the policy's bound); all before any signature work.
    """
    cached = _PARSED_HEADERS.get(segment)
    if cached is not None:
        if cached.alg not in algorithms:
            raise _alg_not_allowed(cached.alg, algorithms)
        if cached.rsa_bits > max_rsa_bits:
            raise _rsa_too_large(cached.rsa_bits, max_rsa_bits)
        return cached
    header = parse_json(b64decode(segment, "header"), "header")
    if "crit" in header or "b64" in header:
        raise fail(
            "the DPoP proof header lists critical extensions tokenlib does not understand",
            "crit",
            presented=sorted(k for k in ("crit", "b64") if k in header),
        )
    missing = [name for name in ("typ", "alg", "jwk") if name not in header]
    if missing:
        raise fail(
            f"the DPoP proof header lacks {', '.join(missing)}",
            "claims",
            missing=missing,
            rfc_section="RFC 9449 §4.2",
        )
    typ = header["typ"]
    if typ != DPOP_TYP:
        raise fail(
            "the DPoP proof typ is not dpop+jwt",
            "typ",
            expected=DPOP_TYP,
            presented=typ if isinstance(typ, str) else repr(type(typ).__name__),
        )
    alg = header["alg"]
    if not isinstance(alg, str) or alg not in algorithms:
        raise _alg_not_allowed(alg, algorithms)
    key, jkt = load_public_jwk(header["jwk"], error=InvalidDPoPProof)
    if not alg_matches_key(alg, key):
        raise fail(
            "the DPoP proof alg does not fit its jwk",
            "alg",
            presented=alg,
            key=type(key).__name__,
        )
    rsa_bits = key.key_size if isinstance(key, rsa.RSAPublicKey) else 0
    parsed = ParsedHeader(_freeze(header), alg, key, jkt, rsa_bits)
    if rsa_bits > max_rsa_bits:
        if len(segment) <= _MAX_CACHED_HEADER:
            _PARSED_HEADERS.put(segment, parsed)
        raise _rsa_too_large(rsa_bits, max_rsa_bits)
    if len(segment) <= _MAX_CACHED_HEADER:
        _PARSED_HEADERS.put(segment, parsed)
    return parsed


def _rsa_too_large(bits: int, limit: int) -> InvalidDPoPProof:
    return fail(
        "the DPoP proof jwk is a larger RSA key than this server accepts",
        "jwk",
        rsa_bits=bits,
        limit=limit,
        rfc_section="RFC 9449 §11 (resource exhaustion)",
    )


def _alg_not_allowed(alg: object, algorithms: Sequence[str]) -> InvalidDPoPProof:
    return fail(
        "the DPoP proof alg is not an allowed asymmetric algorithm",
        "alg",
        presented=alg if isinstance(alg, str) else repr(alg),
        allowed=" ".join(algorithms),
    )
