"""Compact JWS signing and verification: the only module that imports pyjwt.

tokenlib parses the compact serialisation itself (strictly, once) and uses pyjwt's
algorithm objects for the signature maths. This keeps four rules in one place:

* the algorithm comes from the caller's allowlist, never from the key or the token
  (``none`` and HMAC are never in it: RFC 8725 §3.1/§3.2, RFC 9449 §4.3 check 5);
* the key must fit the algorithm (curve and family), so a P-384 key cannot verify ES256;
* ``crit`` with any member and ``b64: false`` are refused (RFC 7515 §4.1.11, RFC 7797);
* size is bounded before anything is decoded, and duplicate JSON members are refused
  (RFC 7515 §5.2 allows either rejection or last-wins; we reject).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from jwt.algorithms import Algorithm, ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

from tokenlib.errors import InvalidToken, TokenError
from tokenlib.jwk import (
    ALGORITHMS,
    PrivateKey,
    PublicKey,
    alg_matches_key,
    b64url_decode,
    b64url_encode,
)

__all__ = ["MAX_TOKEN_LENGTH", "ParsedJWS", "encode_segment", "parse", "sign", "verify_signature"]

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


def _json_object(raw: bytes, what: str, error: type[TokenError]) -> dict[str, Any]:
    try:
        value = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise error(f"the {what} is not valid JSON: {exc}", details={"check": "syntax"}) from None
    if not isinstance(value, dict):
        raise error(f"the {what} is not a JSON object", details={"check": "syntax"})
    return value


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
    signature = _IMPLS[alg].sign(signing_input.encode("ascii"), key)
    return f"{signing_input}.{b64url_encode(signature)}"


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
    but three base64url segments, non-object JSON, duplicate members, a missing or
    non-string ``alg``, any ``crit`` (we implement no extensions) and ``b64``.
    """
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
    head_b64, body_b64, sig_b64 = parts
    try:
        head_raw = b64url_decode(head_b64)
        body_raw = b64url_decode(body_b64)
        signature = b64url_decode(sig_b64)
    except (ValueError, UnicodeEncodeError):
        raise error(f"the {what} is not base64url encoded", details={"check": "syntax"}) from None
    header = _json_object(head_raw, f"{what} header", error)
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
    payload = _json_object(body_raw, f"{what} payload", error)
    return ParsedJWS(header, payload, f"{head_b64}.{body_b64}".encode("ascii"), signature)


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
    if not _IMPLS[alg].verify(parsed.signing_input, key, parsed.signature):
        raise error(f"the {what} signature is invalid", details={"check": "signature"})
    return alg
