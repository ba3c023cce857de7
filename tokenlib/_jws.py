"""Compact JWS signing and verification: the only module that imports pyjwt.

tokenlib parses the compact serialisation itself (strictly, once) and does the
signature maths with ``cryptography`` directly (every signature it makes, EC and Ed25519
verification) and with pyjwt's algorithm objects for RSA verification. It runs on every
request, so the header of a token (the same for every token an issuer signs) is decoded
once and cached by its exact segment.
This keeps four rules in one place:

* the algorithm comes from the caller's allowlist, never from the key or the token
  (``none`` and HMAC are never in it: RFC 8725 §3.1/§3.2, RFC 9449 §4.3 check 5);
* the key must fit the algorithm (curve and family), so a P-384 key cannot verify ES256;
* ``crit`` with any member and ``b64: false`` are refused (RFC 7515 §4.1.11, RFC 7797);
* size is bounded before anything is decoded, and duplicate JSON members are refused
  (RFC 7515 §5.2 allows either rejection or last-wins; we reject).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from jwt.algorithms import Algorithm, ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

from tokenlib._cache import BoundedCache, process_cache
from tokenlib.errors import InvalidToken, TokenError
from tokenlib.jwk import (
    ALGORITHMS,
    PrivateKey,
    PublicKey,
    alg_matches_key,
    b64url_decode,
    b64url_encode,
)

__all__ = [
    "MAX_TOKEN_LENGTH",
    "ParsedJWS",
    "ecdsa_der",
    "encode_segment",
    "is_ec_public",
    "is_ed25519_public",
    "loads",
    "parse",
    "parse_parts",
    "sign",
    "sign_raw",
    "split_compact",
    "verify_fitted",
    "verify_signature",
]

#: Default upper bound for a compact JWS, checked before any decoding (DoS hardening).
MAX_TOKEN_LENGTH: Final = 16_384

_IMPLS: Final[dict[str, Algorithm]] = {
    "ES256": ECAlgorithm(ECAlgorithm.SHA256),
    "ES384": ECAlgorithm(ECAlgorithm.SHA384),
    "ES512": ECAlgorithm(ECAlgorithm.SHA512),
    "RS256": RSAAlgorithm(RSAAlgorithm.SHA256),
    "RS384": RSAAlgorithm(RSAAlgorithm.SHA384),
    "RS512": RSAAlgorithm(RSAAlgorithm.SHA512),
    "PS256": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA256),
    "PS384": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA384),
    "PS512": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA512),
    "EdDSA": OKPAlgorithm(),
    "Ed25519": OKPAlgorithm(),
}
assert set(_IMPLS) == set(ALGORITHMS)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate member name")
    return out


_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
)
# The decoder's C scanner (set in JSONDecoder.__init__; typeshed does not declare it).
_scan_once: Final[Callable[[str, int], tuple[Any, int]]] = _DECODER.scan_once  # type: ignore[attr-defined]


def loads(text: str) -> Any:
    """Strict ``json.loads``: duplicate members and ``NaN``/``Infinity`` raise
    ``ValueError``. The common case (no surrounding whitespace) goes
    straight to the C scanner, anything else takes the full path with its errors."""
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        end = -1
    if end != len(text):
        value = _DECODER.decode(text)
    return value


def _json_object(raw: bytes, what: str, error: type[TokenError]) -> dict[str, Any]:
    """A JSON object from UTF-8 ``raw`` (RFC 7515 §5.2: no duplicate members; RFC 8259:
    no ``NaN``/``Infinity``)."""
    try:
        value = loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise error(f"the {what} is not valid JSON: {exc}", details={"check": "syntax"}) from None
    if not isinstance(value, dict):
        raise error(f"the {what} is not a JSON object", details={"check": "syntax"})
    return value


# Checked token headers by their exact segment: every token an issuer signs repeats one
# header, so it is decoded and checked once. Only headers that passed every check of
# :func:`parse` and hold nothing but scalars are kept; callers get a copy.
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_MAX_CACHED_SEGMENT: Final = 1024
_HEADERS: Final[BoundedCache[str, dict[str, Any]]] = process_cache("jws.headers", 512)


def encode_segment(obj: Mapping[str, Any]) -> str:
    """base64url(compact UTF-8 JSON) of a header or claims set."""
    return b64url_encode(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def sign(
    header: Mapping[str, Any],
    payload: Mapping[str, Any],
    key: PrivateKey,
    *,
    header_segment: str | None = None,
) -> str:
    """Sign ``payload`` as a compact JWS with ``header['alg']``.

    ``header_segment`` lets a caller that signs many times with one key reuse the
    already-encoded header (DPoP proofs repeat the same ``jwk`` header).
    """
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in _IMPLS:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    if not alg_matches_key(alg, key):
        raise ValueError(f"algorithm {alg} does not fit a {type(key).__name__}")
    head = header_segment if header_segment is not None else encode_segment(header)
    signing_input = f"{head}.{encode_segment(payload)}"
    return f"{signing_input}.{b64url_encode(sign_raw(key, alg, signing_input.encode('ascii')))}"


_RSA_HASHES: Final[dict[str, hashes.HashAlgorithm]] = {
    "256": hashes.SHA256(),
    "384": hashes.SHA384(),
    "512": hashes.SHA512(),
}


def sign_raw(key: PrivateKey, alg: str, data: bytes) -> bytes:
    """JWS signature bytes over ``data`` for an ``alg`` already fitted to ``key``: EC as
    fixed-size ``r || s`` (RFC 7518 §3.4), Ed25519 (RFC 8037 §3.1), RSA PKCS#1 v1.5 or
    PSS with salt = hash length (RFC 7518 §3.3/§3.5)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        ecdsa, size = _ECDSA[alg]
        r, s = decode_dss_signature(key.sign(data, ecdsa))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    digest = _RSA_HASHES[alg[2:]]
    if alg.startswith("PS"):
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        return key.sign(data, pss, digest)
    return key.sign(data, padding.PKCS1v15(), digest)


@dataclass(frozen=True, slots=True)
class ParsedJWS:
    """A compact JWS split and decoded, but not yet verified."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def parse(
    token: object,
    *,
    max_length: int = MAX_TOKEN_LENGTH,
    error: type[TokenError] = InvalidToken,
    what: str = "token",
) -> ParsedJWS:
    """Split and decode a compact JWS without trusting any of it.

    Refuses, with ``error``: non-strings, oversized input (before decoding), anything
    but three canonical base64url segments, non-object JSON, duplicate members, a
    missing or non-string ``alg``, any ``crit`` (we implement no extensions) and ``b64``.
    """
    return ParsedJWS(*parse_parts(token, max_length=max_length, error=error, what=what))


def split_compact(
    token: object, *, max_length: int, error: type[TokenError], what: str
) -> list[str]:
    """The three segments of a compact JWS: a string, no longer than ``max_length``
    (checked before anything is decoded), with exactly two dots."""
    if not isinstance(token, str):
        raise error(f"the {what} is not a string", details={"check": "syntax"})
    if len(token) > max_length:
        raise error(
            f"the {what} is too large",
            details={"check": "size", "length": len(token), "limit": max_length},
        )
    parts = token.split(".")
    if len(parts) != 3:
        raise error(
            f"the {what} is not a compact JWS (three segments)", details={"check": "syntax"}
        )
    return parts


def parse_parts(
    token: object, *, max_length: int, error: type[TokenError], what: str
) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """``parse`` as a plain ``(header, payload, signing_input, signature)`` tuple, for
    the per-request path (no result object to build)."""
    head_b64, body_b64, sig_b64 = split_compact(
        token, max_length=max_length, error=error, what=what
    )
    try:
        signature = b64url_decode(sig_b64)
        body_raw = b64url_decode(body_b64)
        cached = _HEADERS.get(head_b64)
        head_raw = b"" if cached is not None else b64url_decode(head_b64)
    except (ValueError, UnicodeEncodeError):
        raise error(f"the {what} is not base64url encoded", details={"check": "syntax"}) from None
    if cached is not None:
        header = dict(cached)
    else:
        header = _json_object(head_raw, f"{what} header", error)
        _check_header(header, what, error)
        if len(head_b64) <= _MAX_CACHED_SEGMENT and all(
            type(value) in _SCALARS for value in header.values()
        ):
            _HEADERS.put(head_b64, dict(header))
    payload = _json_object(body_raw, f"{what} payload", error)
    signing_input = f"{head_b64}.{body_b64}".encode("ascii")
    return header, payload, signing_input, signature


def _check_header(header: Mapping[str, Any], what: str, error: type[TokenError]) -> None:
    """``alg`` is a string; no ``crit`` (RFC 7515 §4.1.11), no ``b64`` (RFC 7797)."""
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise error(f"the {what} header has no alg", details={"check": "alg"})
    if "crit" in header:
        raise error(
            f"the {what} header lists critical extensions tokenlib does not understand",
            details={"check": "crit"},
        )
    if "b64" in header:
        raise error(f"the {what} uses an unencoded payload (b64)", details={"check": "crit"})


def verify_signature(
    parsed: ParsedJWS,
    key: PublicKey,
    *,
    algorithms: Sequence[str],
    error: type[TokenError] = InvalidToken,
    what: str = "token",
) -> str:
    """Check ``parsed`` against ``key`` with ``alg`` from the explicit allowlist.

    Returns the algorithm used. ``none``, HMAC and anything not in ``algorithms`` or not
    fitting the key are refused before any maths is done.
    """
    alg: str = parsed.header["alg"]
    if alg not in algorithms or alg not in _IMPLS:
        raise error(
            f"the {what} algorithm is not allowed",
            details={"check": "alg", "presented": alg, "allowed": " ".join(algorithms)},
        )
    if not alg_matches_key(alg, key):
        raise error(
            f"the {what} algorithm does not fit the key",
            details={"check": "alg", "presented": alg, "key": type(key).__name__},
        )
    if not verify_fitted(alg, key, parsed.signing_input, parsed.signature):
        raise error(f"the {what} signature is invalid", details={"check": "signature"})
    return alg


_ECDSA: Final = {
    "ES256": (ec.ECDSA(hashes.SHA256()), 32),
    "ES384": (ec.ECDSA(hashes.SHA384()), 48),
    "ES512": (ec.ECDSA(hashes.SHA512()), 66),
}
# Concrete classes seen to be EC / Ed25519 public keys (``cryptography``'s ABC checks
# cost more than the rest of the bookkeeping; a class is added only after one passed).
_EC_PUBLIC: Final[set[type]] = set()
_ED_PUBLIC: Final[set[type]] = set()


def is_ec_public(key: object) -> TypeGuard[ec.EllipticCurvePublicKey]:
    kind = type(key)
    if kind in _EC_PUBLIC:
        return True
    if isinstance(key, ec.EllipticCurvePublicKey):
        _EC_PUBLIC.add(kind)
        return True
    return False


def is_ed25519_public(key: object) -> TypeGuard[ed25519.Ed25519PublicKey]:
    kind = type(key)
    if kind in _ED_PUBLIC:
        return True
    if isinstance(key, ed25519.Ed25519PublicKey):
        _ED_PUBLIC.add(kind)
        return True
    return False


def _der_integer(value: bytes) -> bytes:
    value = value.lstrip(b"\0")
    if not value or value[0] & 0x80:
        value = b"\0" + value
    return b"\x02" + bytes((len(value),)) + value


def ecdsa_der(signature: bytes, size: int) -> bytes:
    """The DER ``ECDSA-Sig-Value`` (RFC 3279 §2.2.3) of a JWS ``r || s`` signature of two
    ``size``-byte integers (RFC 7518 §3.4), as ``encode_dss_signature`` builds it."""
    if size > 48:  # P-521: the sequence may need a long-form length
        return encode_dss_signature(
            int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        )
    body = _der_integer(signature[:size]) + _der_integer(signature[size:])
    return b"\x30" + bytes((len(body),)) + body


def verify_fitted(alg: str, key: PublicKey, signing_input: bytes, signature: bytes) -> bool:
    """The signature maths alone, for a caller that has already checked ``alg`` against
    its allowlist and against ``key`` (``verify_signature`` does both).

    EC (fixed-size ``r || s``, RFC 7518 §3.4) and Ed25519 (RFC 8037 §3.1) go straight to
    ``cryptography``; RSA through pyjwt's algorithm objects.
    """
    ecdsa = _ECDSA.get(alg)
    try:
        if ecdsa is not None and is_ec_public(key):
            size = ecdsa[1]
            if len(signature) != 2 * size:
                return False
            key.verify(ecdsa_der(signature, size), signing_input, ecdsa[0])
            return True
        if is_ed25519_public(key):
            key.verify(signature, signing_input)
            return True
    except InvalidSignature:
        return False
    return bool(_IMPLS[alg].verify(signing_input, key, signature))
