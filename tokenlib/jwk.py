"""Keys, public JWKs (RFC 7517/7518/8037) and JWK thumbprints (RFC 7638).

Only asymmetric signing keys exist here: EC P-256/P-384/P-521, Ed25519 and RSA of at
least 2048 bits. A JWK that carries private members or is symmetric (``oct``) is
refused wherever a *public* key is expected (RFC 9449 §4.3 check 7).
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tokenlib._atomic import atomic_write_bytes
from tokenlib._cache import BoundedCache, process_cache
from tokenlib.errors import InvalidToken, TokenError

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "RSA_PUBLIC_EXPONENT",
    "PrivateKey",
    "PublicKey",
    "alg_matches_key",
    "b64url_decode",
    "b64url_encode",
    "check_rsa_key_bounds",
    "default_alg_for_key",
    "generate_key",
    "jwk_thumbprint",
    "load_private_key",
    "load_public_jwk",
    "public_jwk",
    "write_private_key",
]

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

#: Every asymmetric JWS algorithm tokenlib can verify. ``Ed25519`` is the RFC 9864
#: fully-specified name for what RFC 8037 calls ``EdDSA`` with an Ed25519 key.
ALGORITHMS: Final[tuple[str, ...]] = (
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
    "PS256",
    "PS384",
    "PS512",
    "RS256",
    "RS384",
    "RS512",
)
#: The default verification allowlist (FAPI 2.0 style: no PKCS#1 v1.5 except RS256).
DEFAULT_ALGORITHMS: Final[tuple[str, ...]] = (
    "ES256",
    "ES384",
    "EdDSA",
    "Ed25519",
    "PS256",
    "RS256",
)

#: RSA key bounds for every key tokenlib verifies with or signs with. Below 2048 bits
#: is refused (RFC 7518 §3.3/§3.5). Above 8192 bits, or any public exponent but 65537,
#: is refused *before* any signature work: verification cost grows with the square of
#: the modulus size and linearly with the exponent's bit length, so an unbounded ``jwk``
#: lets one request buy milliseconds of CPU (issue 11: a 3,071-bit exponent cost 60–83×
#: an honest proof). 65537 is what every mainstream generator uses and the smallest
#: exponent NIST SP 800-56B Rev. 2 §6.2 allows; tokenlib accepts no other.
MIN_RSA_BITS: Final = 2048
MAX_RSA_BITS: Final = 8192
RSA_PUBLIC_EXPONENT: Final = 65537
# Base64urlUInt of 65537 in the minimum number of octets (RFC 7518 §6.3.1.2).
_RSA_E_B64: Final = "AQAB"
# The longest base64url ``n`` that can hold MAX_RSA_BITS (one leading zero octet allowed).
_MAX_N_B64: Final = -(-((MAX_RSA_BITS // 8 + 1) * 4) // 3)
_EC_CURVES: Final[dict[str, tuple[type[ec.EllipticCurve], int, str]]] = {
    # crv -> (curve class, coordinate length in bytes, JWS alg) per RFC 7518 §3.4/§6.2.1
    "P-256": (ec.SECP256R1, 32, "ES256"),
    "P-384": (ec.SECP384R1, 48, "ES384"),
    "P-521": (ec.SECP521R1, 66, "ES512"),
}
_CURVE_NAME_TO_CRV: Final = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


_TO_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")
_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")
# RFC 4648 §3.5: a segment of length 4k+2 (4k+3) ends in a character with 4 (2) unused
# low bits, which the canonical encoding sets to zero.
_CANONICAL_LAST: Final = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}
_PADDING: Final = {0: "", 2: "==", 3: "="}


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_TO_URLSAFE).decode()


def b64url_decode(data: str) -> bytes:
    """Strict, canonical, unpadded base64url decode (RFC 7515 §2, RFC 4648 §3.5).

    Refuses padding, characters outside the alphabet, impossible lengths and non-zero
    unused bits, so one value has exactly one spelling. The alphabet is checked in C by
    ``binascii`` in strict mode (this runs on every token and proof). Raises ``ValueError``.
    """
    rem = len(data) & 3
    if rem == 1:
        raise ValueError("invalid base64url length")
    if rem and data[-1] not in _CANONICAL_LAST[rem]:
        raise ValueError("non-canonical base64url (unused bits set)")
    if "+" in data or "/" in data or "=" in data:
        raise ValueError("not unpadded base64url")
    raw = (data + _PADDING[rem]).encode("utf-8", "surrogatepass").translate(_TO_STANDARD)
    try:
        return binascii.a2b_base64(raw, strict_mode=True)
    except binascii.Error:
        raise ValueError("not unpadded base64url (a character outside the alphabet)") from None


def generate_key(alg: str = "ES256", *, rsa_bits: int = 2048) -> PrivateKey:
    """A fresh private key for ``alg``: ES256, ES384, ES512, EdDSA/Ed25519, RS256 or PS256.

    RSA keys are at least 2048 bits (RFC 7518 §3.3).
    """
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    if alg == "ES512":
        return ec.generate_private_key(ec.SECP521R1())
    if alg in ("EdDSA", "Ed25519"):
        return ed25519.Ed25519PrivateKey.generate()
    if alg in ("RS256", "PS256", "RS384", "PS384", "RS512", "PS512"):
        if rsa_bits < MIN_RSA_BITS:
            raise ValueError(f"RSA keys must be at least {MIN_RSA_BITS} bits, got {rsa_bits}")
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    raise ValueError(f"unsupported algorithm {alg!r}; choose one of {', '.join(ALGORITHMS)}")


def default_alg_for_key(key: PrivateKey | PublicKey) -> str:
    """The natural JWS ``alg`` for a key: ES256/384/512 by curve, EdDSA, or PS256 for RSA."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        crv = _CURVE_NAME_TO_CRV.get(key.curve.name)
        if crv is None:
            raise ValueError(f"unsupported EC curve {key.curve.name}")
        return _EC_CURVES[crv][2]
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "PS256"
    raise TypeError(f"unsupported key type {type(key).__name__}")


def alg_matches_key(alg: str, key: PrivateKey | PublicKey) -> bool:
    """True if ``alg`` can be used with ``key`` (curve and family must agree, RFC 7518 §3)."""
    if alg in ("ES256", "ES384", "ES512"):
        if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
            return False
        crv = _CURVE_NAME_TO_CRV.get(key.curve.name)
        return crv is not None and _EC_CURVES[crv][2] == alg
    if alg in ("EdDSA", "Ed25519"):
        return isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey)
    if alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
        return (
            isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS
        )
    return False


def _int_b64(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(size, "big"))


def public_jwk(key: PrivateKey | PublicKey | Mapping[str, Any]) -> dict[str, str]:
    """The public JWK of a key (only the RFC 7518/8037 public members, no ``d``).

    Accepts a ``cryptography`` private or public key, or a JWK mapping (whose public
    members are validated and returned).
    """
    if isinstance(key, Mapping):
        return _public_members(key)
    pub: PublicKey
    if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        pub = key.public_key()
    else:
        pub = key
    if isinstance(pub, ec.EllipticCurvePublicKey):
        crv = _CURVE_NAME_TO_CRV.get(pub.curve.name)
        if crv is None:
            raise ValueError(f"unsupported EC curve {pub.curve.name}")
        size = _EC_CURVES[crv][1]
        nums = pub.public_numbers()
        return {"kty": "EC", "crv": crv, "x": _int_b64(nums.x, size), "y": _int_b64(nums.y, size)}
    if isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    if isinstance(pub, rsa.RSAPublicKey):
        rnums = pub.public_numbers()
        return {"kty": "RSA", "n": _int_b64(rnums.n), "e": _int_b64(rnums.e)}
    raise TypeError(f"unsupported key type {type(key).__name__}")


def _required_members(jwk: Mapping[str, Any]) -> dict[str, str]:
    """The RFC 7638 §3.2 required members for the key's ``kty``, type-checked."""
    kty = jwk.get("kty")
    if kty == "EC":
        names: tuple[str, ...] = ("crv", "kty", "x", "y")
    elif kty == "OKP":
        names = ("crv", "kty", "x")
    elif kty == "RSA":
        names = ("e", "kty", "n")
    elif kty == "oct":
        raise ValueError("symmetric (oct) keys are not accepted")
    else:
        raise ValueError(f"unsupported or missing kty {kty!r}")
    out: dict[str, str] = {}
    for name in names:
        value = jwk.get(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"JWK member {name!r} is missing or not a string")
        out[name] = value
    return out


def _public_members(jwk: Mapping[str, Any]) -> dict[str, str]:
    if not isinstance(jwk, Mapping):
        raise TypeError("a JWK must be a JSON object")
    private = _PRIVATE_MEMBERS.intersection(jwk)
    if private:
        raise ValueError(f"JWK contains private or symmetric members: {', '.join(sorted(private))}")
    members = _required_members(jwk)
    _key_from_members(members)  # validates curve and lengths
    return members


def jwk_thumbprint(jwk_or_key: PrivateKey | PublicKey | Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 JWK thumbprint (base64url), as used in ``cnf.jkt`` (RFC 9449 §6.1).

    Only the required members, in lexicographic order, with no whitespace (RFC 7638 §3).
    """
    if isinstance(jwk_or_key, Mapping):
        return _thumbprint_of(_required_members(jwk_or_key))
    return _thumbprint_of(public_jwk(jwk_or_key))


def _thumbprint_of(members: Mapping[str, str]) -> str:
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


def _coord(members: Mapping[str, str], name: str, length: int | None) -> int:
    try:
        raw = b64url_decode(members[name])
    except (ValueError, KeyError) as exc:
        raise ValueError(f"JWK member {name!r} is not valid base64url") from exc
    if length is not None and len(raw) != length:
        raise ValueError(f"JWK member {name!r} must be {length} bytes, got {len(raw)}")
    return int.from_bytes(raw, "big")


def _key_from_members(members: Mapping[str, str]) -> PublicKey:
    kty = members["kty"]
    if kty == "EC":
        spec = _EC_CURVES.get(members["crv"])
        if spec is None:
            raise ValueError(f"unsupported EC curve {members['crv']!r}")
        curve_cls, size, _ = spec
        x = _coord(members, "x", size)
        y = _coord(members, "y", size)
        try:
            return ec.EllipticCurvePublicNumbers(x, y, curve_cls()).public_key()
        except ValueError as exc:
            raise ValueError("EC point is not on the curve") from exc
    if kty == "OKP":
        if members["crv"] != "Ed25519":
            raise ValueError(f"unsupported OKP curve {members['crv']!r}")
        try:
            raw = b64url_decode(members["x"])
        except ValueError as exc:
            raise ValueError("JWK member 'x' is not valid base64url") from exc
        if len(raw) != 32:
            raise ValueError("Ed25519 public key must be 32 bytes")
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    # Bounds first, on the encoded text, before any big-number work.
    if members["e"] != _RSA_E_B64:
        raise ValueError(
            f"RSA public exponent must be {RSA_PUBLIC_EXPONENT} (e = {_RSA_E_B64!r}); "
            "other exponents are refused to bound verification cost"
        )
    if len(members["n"]) > _MAX_N_B64:
        raise ValueError(f"RSA keys must be at most {MAX_RSA_BITS} bits")
    n = _coord(members, "n", None)
    bits = n.bit_length()
    if bits < MIN_RSA_BITS:
        raise ValueError(f"RSA keys must be at least {MIN_RSA_BITS} bits")
    if bits > MAX_RSA_BITS:
        raise ValueError(f"RSA keys must be at most {MAX_RSA_BITS} bits")
    if n % 2 == 0:
        raise ValueError("RSA modulus is even")
    return rsa.RSAPublicNumbers(RSA_PUBLIC_EXPONENT, n).public_key()


def check_rsa_key_bounds(key: PrivateKey | PublicKey) -> None:
    """Refuse an RSA key outside tokenlib's bounds, to sign or to verify with: shorter
    than 2048 bits (RFC 7518 §3.3, §3.5), longer than :data:`MAX_RSA_BITS`, or with a
    public exponent other than :data:`RSA_PUBLIC_EXPONENT`. ``ValueError`` says which;
    other key types pass."""
    if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return
    bits = key.key_size
    if bits < MIN_RSA_BITS:
        raise ValueError(
            f"RSA keys must be at least {MIN_RSA_BITS} bits (RFC 7518 §3.3); this one has {bits}"
        )
    if bits > MAX_RSA_BITS:
        raise ValueError(f"RSA keys must be at most {MAX_RSA_BITS} bits; this one has {bits}")
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    exponent = public.public_numbers().e
    if exponent != RSA_PUBLIC_EXPONENT:
        raise ValueError(
            f"RSA public exponent must be {RSA_PUBLIC_EXPONENT}; this key has {exponent}"
        )


# Parsing an EC point costs more than hashing a signature's input; proofs from one client
# repeat the same ``jwk`` on every request. Keyed by the required members in RFC 7638 order.
_KEYS: Final[BoundedCache[tuple[str, ...], tuple[PublicKey, str]]] = process_cache(
    "jwk.public_keys", 4096
)


def _parsed_public_key(members: dict[str, str]) -> tuple[PublicKey, str]:
    """``(key, thumbprint)`` for validated required members, memoised."""
    cache_key = tuple(members[k] for k in sorted(members))
    hit = _KEYS.get(cache_key)
    if hit is None:
        hit = (_key_from_members(members), _thumbprint_of(members))
        _KEYS.put(cache_key, hit)
    return hit


def load_public_jwk(
    jwk: object, *, error: type[TokenError] = InvalidToken
) -> tuple[PublicKey, str]:
    """Parse an untrusted public JWK into ``(key, RFC 7638 thumbprint)``.

    Refuses private members, ``oct`` keys, unknown ``kty``/``crv``, RSA moduli outside
    2048–8192 bits or exponents other than 65537 (checked on the encoded text before any
    key is built) and points off the curve, raising ``error`` (the caller picks the RFC
    code).
    """
    if not isinstance(jwk, Mapping):
        raise error("the jwk is not a JSON object", details={"check": "jwk"})
    private = _PRIVATE_MEMBERS.intersection(jwk)
    if private:
        raise error(
            "the jwk contains private or symmetric key material",
            details={"check": "jwk", "private_members": sorted(private)},
        )
    try:
        return _parsed_public_key(_required_members(jwk))
    except ValueError as exc:
        raise error(
            f"the jwk is not a usable public key: {exc}", details={"check": "jwk"}
        ) from None


def load_private_key(data: bytes | str | Path, *, password: bytes | None = None) -> PrivateKey:
    """Load a PEM private key from bytes or a file path (EC, Ed25519 or RSA ≥ 2048)."""
    if isinstance(data, Path):
        pem = data.read_bytes()
    elif isinstance(data, str):
        pem = data.encode("ascii") if data.lstrip().startswith("-----") else Path(data).read_bytes()
    else:
        pem = data
    key = serialization.load_pem_private_key(pem, password=password)
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < MIN_RSA_BITS:
        raise ValueError(f"RSA keys must be at least {MIN_RSA_BITS} bits")
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    ):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


def write_private_key(path: str | Path, key: PrivateKey, *, password: bytes | None = None) -> Path:
    """Write ``key`` as PKCS#8 PEM to ``path`` atomically with mode 0600.

    The file is created 0600 in the target folder and renamed into place, so a reader
    never sees a half-written or world-readable key.
    """
    target = Path(path)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return atomic_write_bytes(target, pem, mode=0o600)
