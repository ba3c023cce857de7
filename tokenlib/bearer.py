"""Issue and verify JWT access tokens (RFC 9068), bearer or bound through ``cnf``.

``Issuer`` signs ``at+jwt`` tokens (RFC 9068 §2) with the claims RFC 9068 §2.2 requires
and, when asked, a ``cnf`` binding to a DPoP key (``jkt``, RFC 9449 §6.1) or a client
certificate (``x5t#S256``, RFC 8705 §3.1).

``verify_access_token`` is the resource server's check of RFC 9068 §4, fail-closed and
in this order, so a forged token is reported as forged, not as expired:

1. size and compact-JWS syntax (no ``crit``, no ``b64``, no duplicate members);
2. ``typ`` is ``at+jwt`` or ``application/at+jwt`` (case-insensitive, RFC 7515 §4.1.9);
3. ``alg`` is in the caller's allowlist (never ``none`` or HMAC, RFC 8725 §3.1);
4. the key is chosen from the trusted JWKS by ``kid`` and must fit ``alg``; the
   signature is verified;
5. the required claims are present with the right types (RFC 9068 §2.2);
6. ``iss`` equals the expected issuer exactly; ``aud`` contains an expected audience;
7. ``exp`` is in the future and ``nbf``/``iat`` are not, each with ``leeway`` seconds.

Binding (``cnf``) is parsed here but enforced by the caller: ``tokenlib.mtls`` for
certificates, ``tokenlib.dpop``/``tokenlib.server`` for DPoP proofs.

Verification of the same token repeats on every request; ``AccessTokenCache`` (or a
``TokenVerifier`` which owns one) remembers tokens that passed steps 1–6 by the SHA-256
of the token and the verifier's configuration, and re-runs step 7 on every hit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Final

from tokenlib import _jws
from tokenlib._time import Now, resolve_now
from tokenlib.claims import (
    REGISTERED_CLAIMS,
    AccessToken,
    is_sha256_b64url,
    parse_access_token_claims,
    parse_scope,
)
from tokenlib.errors import InvalidToken
from tokenlib.jwk import (
    ALGORITHMS,
    DEFAULT_ALGORITHMS,
    PrivateKey,
    alg_matches_key,
    default_alg_for_key,
    jwk_thumbprint,
    public_jwk,
)
from tokenlib.jwks import JWKSet, as_jwk_set

__all__ = [
    "ACCESS_TOKEN_TYP",
    "AccessTokenCache",
    "Issuer",
    "TokenVerifier",
    "verify_access_token",
]

#: RFC 9068 §2.1 header ``typ`` of a JWT access token.
ACCESS_TOKEN_TYP: Final = "at+jwt"  # noqa: S105 - a media type, not a secret
_ACCEPTED_TYP: Final = frozenset({"at+jwt", "application/at+jwt"})
_MAX_SHOWN: Final = 120


def _shown(value: object) -> object:
    if isinstance(value, str) and len(value) > _MAX_SHOWN:
        return value[:_MAX_SHOWN] + "…"
    return value


class Issuer:
    """An authorization server's access-token signer (RFC 9068 §2).

    ``alg`` defaults from the key (ES256 for P-256, EdDSA, PS256 for RSA) and must fit
    it; ``kid`` defaults to the key's RFC 7638 thumbprint. The private key never appears
    in ``repr``, tokens or ``jwks()``.
    """

    __slots__ = ("_header_segment", "_key", "_public_jwk", "alg", "issuer", "kid", "lifetime")

    def __init__(
        self,
        issuer: str,
        signing_key: PrivateKey,
        *,
        lifetime: int = 300,
        alg: str | None = None,
        kid: str | None = None,
    ) -> None:
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("issuer must be a non-empty string")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime <= 0:
            raise ValueError("lifetime must be a positive number of seconds")
        chosen = alg if alg is not None else default_alg_for_key(signing_key)
        if not alg_matches_key(chosen, signing_key):
            raise ValueError(f"algorithm {chosen} does not fit a {type(signing_key).__name__}")
        if not hasattr(signing_key, "sign"):
            raise TypeError("signing_key must be a cryptography private key")
        self.issuer = issuer
        self.lifetime = lifetime
        self.alg = chosen
        self.kid = kid if kid is not None else jwk_thumbprint(signing_key)
        self._key = signing_key
        self._public_jwk = public_jwk(signing_key)
        self._header_segment = _jws.encode_segment(
            {"alg": self.alg, "typ": ACCESS_TOKEN_TYP, "kid": self.kid}
        )

    def __repr__(self) -> str:
        return f"Issuer(issuer={self.issuer!r}, alg={self.alg!r}, kid={self.kid!r})"

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWKS to publish (RFC 7517 §5): one key with ``kid``, ``alg``, ``use``."""
        return {"keys": [{**self._public_jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}]}

    def jwk_set(self) -> JWKSet:
        """``jwks()`` as a parsed ``JWKSet`` (what a resource server would build)."""
        return JWKSet.from_dict(self.jwks())

    def issue(
        self,
        *,
        subject: str,
        client_id: str,
        audience: str | Sequence[str],
        scope: str | Sequence[str] | None = None,
        jkt: str | None = None,
        x5t_s256: str | None = None,
        lifetime: int | None = None,
        now: Now = None,
        jti: str | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """Sign an RFC 9068 access token.

        ``audience`` is one string or a list; ``scope`` a space-delimited string or a list
        of scope-tokens; ``jkt`` binds the token to a DPoP key (RFC 9449 §6.1),
        ``x5t_s256`` to a client certificate (RFC 8705 §3.1). ``jti`` defaults to 128
        random bits. ``extra_claims`` (``auth_time``, ``acr``, ``amr``, ``groups``...) may
        not override a registered claim. Wrong arguments raise ``ValueError``.
        """
        for name, value in (("subject", subject), ("client_id", client_id)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        if isinstance(audience, str):
            if not audience:
                raise ValueError("audience must be a non-empty string or list of strings")
            aud: str | list[str] = audience
        else:
            aud = list(audience)
            if not aud or not all(isinstance(a, str) and a for a in aud):
                raise ValueError("audience must be a non-empty string or list of strings")
        ttl = self.lifetime if lifetime is None else lifetime
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise ValueError("lifetime must be a positive number of seconds")
        issued_at = int(resolve_now(now))
        token_id = secrets.token_urlsafe(16) if jti is None else jti
        if not isinstance(token_id, str) or not token_id:
            raise ValueError("jti must be a non-empty string")
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": aud,
            "client_id": client_id,
            "iat": issued_at,
            "exp": issued_at + ttl,
            "jti": token_id,
        }
        if scope is not None:
            text = scope if isinstance(scope, str) else " ".join(scope)
            try:
                parse_scope(text)
            except InvalidToken as exc:
                raise ValueError(f"invalid scope: {exc.description}") from None
            if text:
                claims["scope"] = text
        cnf: dict[str, str] = {}
        for member, binding in (("jkt", jkt), ("x5t#S256", x5t_s256)):
            if binding is None:
                continue
            if not is_sha256_b64url(binding):
                raise ValueError(f"{member} must be a base64url SHA-256 thumbprint (43 chars)")
            cnf[member] = binding
        if cnf:
            claims["cnf"] = cnf
        if extra_claims:
            clash = REGISTERED_CLAIMS.intersection(extra_claims)
            if clash:
                raise ValueError(
                    f"extra_claims may not override registered claims: {', '.join(sorted(clash))}"
                )
            claims.update(extra_claims)
        return _jws.sign(
            {"alg": self.alg, "typ": ACCESS_TOKEN_TYP, "kid": self.kid},
            claims,
            self._key,
            header_segment=self._header_segment,
        )


def _audiences(audience: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(audience, str):
        values: tuple[str, ...] = (audience,)
    else:
        values = tuple(audience)
    if not values or not all(isinstance(a, str) and a for a in values):
        raise ValueError("audience must be a non-empty string or sequence of strings")
    return values


_B64URL: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# A segment of length 4k+2 encodes its last byte in 2 characters with 4 unused bits, one of
# length 4k+3 has 2 unused bits; RFC 4648 §3.5 canonical encoding sets them to zero.
_CANONICAL_LAST: Final = {
    2: frozenset(_B64URL[::16]),
    3: frozenset(_B64URL[::4]),
}


def _check_canonical(token: str) -> None:
    """Refuse base64url segments with non-zero padding bits (RFC 4648 §3.5), so one
    token has exactly one spelling: a mutated string never verifies as the original."""
    for segment in token.split("."):
        allowed = _CANONICAL_LAST.get(len(segment) % 4)
        if allowed is not None and segment[-1] not in allowed:
            raise InvalidToken(
                "the access token is not canonical base64url",
                details={"check": "syntax", "rfc": "RFC 4648 §3.5"},
            )


def _allowlist(algorithms: Sequence[str]) -> tuple[str, ...]:
    """The caller's allowlist, refused if it names ``none``, HMAC or anything unknown."""
    allowed = tuple(algorithms)
    unknown = [alg for alg in allowed if alg not in ALGORITHMS]
    if not allowed or unknown:
        raise ValueError(
            f"algorithms must be a non-empty subset of {', '.join(ALGORITHMS)}; "
            f"refused: {', '.join(map(str, unknown)) or '(empty)'}"
        )
    return allowed


def _check_time(token: AccessToken, now: float, leeway: float) -> None:
    """RFC 9068 §4 / RFC 7519 §4.1.4–4.1.6: ``exp`` in the future, ``nbf``/``iat`` not."""
    if now >= token.expires_at + leeway:
        raise InvalidToken(
            "the access token has expired",
            details={
                "check": "exp",
                "exp": token.expires_at,
                "now": int(now),
                "leeway": leeway,
                "expired_for": round(now - token.expires_at, 3),
                "rfc": "RFC 7519 §4.1.4",
            },
        )
    if token.not_before is not None and token.not_before > now + leeway:
        raise InvalidToken(
            "the access token is not valid yet (nbf)",
            details={
                "check": "nbf",
                "nbf": token.not_before,
                "now": int(now),
                "leeway": leeway,
                "rfc": "RFC 7519 §4.1.5",
            },
        )
    if token.issued_at > now + leeway:
        raise InvalidToken(
            "the access token was issued in the future (iat)",
            details={
                "check": "iat",
                "iat": token.issued_at,
                "now": int(now),
                "leeway": leeway,
                "ahead_by": round(token.issued_at - now, 3),
                "rfc": "RFC 9068 §4",
            },
        )


def _verify_uncached(
    token: object,
    *,
    issuer: str,
    audiences: tuple[str, ...],
    keys: JWKSet,
    algorithms: Sequence[str],
    max_length: int,
) -> AccessToken:
    parsed = _jws.parse(token, max_length=max_length, error=InvalidToken, what="access token")
    assert isinstance(token, str)
    _check_canonical(token)
    header = parsed.header
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP:
        raise InvalidToken(
            "the token is not a JWT access token (typ must be at+jwt)",
            details={
                "check": "typ",
                "expected": ACCESS_TOKEN_TYP,
                "presented": _shown(typ),
                "rfc": "RFC 9068 §4",
            },
        )
    alg = header["alg"]
    if alg not in algorithms:
        raise InvalidToken(
            "the access token algorithm is not allowed",
            details={
                "check": "alg",
                "presented": _shown(alg),
                "allowed": " ".join(algorithms),
                "rfc": "RFC 8725 §3.1",
            },
        )
    key = keys.select(header.get("kid"), alg)
    _jws.verify_signature(
        parsed, key, algorithms=algorithms, error=InvalidToken, what="access token"
    )
    result = parse_access_token_claims(header, parsed.payload)
    if result.issuer != issuer:
        raise InvalidToken(
            "the access token is from another issuer",
            details={
                "check": "iss",
                "expected": issuer,
                "presented": _shown(result.issuer),
                "rfc": "RFC 9068 §4",
            },
        )
    if not any(aud in audiences for aud in result.audience):
        raise InvalidToken(
            "the access token is meant for another audience",
            details={
                "check": "aud",
                "expected": list(audiences),
                "presented": [_shown(a) for a in result.audience[:10]],
                "rfc": "RFC 9068 §4",
            },
        )
    return result


def _detached(token: AccessToken) -> AccessToken:
    """A copy whose ``header``/``claims`` dicts are its own, so a caller that mutates the
    token it got cannot change what the cache hands out next."""
    return dataclasses.replace(token, header=dict(token.header), claims=dict(token.claims))


class AccessTokenCache:
    """Remembers access tokens that passed every time-independent check, until ``exp``.

    Keys are ``SHA-256(token)`` plus the verifier's configuration (issuer, audiences,
    algorithms and the ``JWKSet.generation``), so a token verified for one audience or key
    set is never served for another; the raw token is not stored. Time checks (``exp``,
    ``nbf``, ``iat``) re-run on every hit. Thread-safe; bounded (least recently used
    entries go first, expired ones are dropped when met). Only successes are cached, and
    every caller gets its own ``AccessToken`` (top-level ``header``/``claims`` copied).
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self._max = max_entries
        self._lock = threading.Lock()
        self._data: OrderedDict[tuple[bytes, tuple[object, ...]], AccessToken] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, digest: bytes, context: tuple[object, ...]) -> AccessToken | None:
        """The cached token for ``(digest, context)`` or ``None``."""
        with self._lock:
            found = self._data.get((digest, context))
            if found is None:
                self.misses += 1
                return None
            self._data.move_to_end((digest, context))
            self.hits += 1
            return found

    def put(self, digest: bytes, context: tuple[object, ...], token: AccessToken) -> None:
        """Remember ``token`` (already verified) under ``(digest, context)``."""
        with self._lock:
            self._data[(digest, context)] = token
            self._data.move_to_end((digest, context))
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def discard(self, digest: bytes, context: tuple[object, ...]) -> None:
        """Forget one entry (an expired token)."""
        with self._lock:
            self._data.pop((digest, context), None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._data.clear()


def verify_access_token(
    token: object,
    *,
    issuer: str,
    audience: str | Sequence[str],
    jwks: JWKSet | Mapping[str, Any],
    algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
    leeway: float = 0,
    now: Now = None,
    cache: AccessTokenCache | None = None,
    max_length: int = _jws.MAX_TOKEN_LENGTH,
) -> AccessToken:
    """Verify a JWT access token as RFC 9068 §4 requires and return its ``AccessToken``.

    ``audience`` is the resource's identifier or a sequence of acceptable ones; ``jwks``
    is the issuer's key set (a ``JWKSet`` or the JWKS mapping); ``algorithms`` the
    allowlist (``none`` and HMAC can never be in it). ``leeway`` is the clock-skew
    tolerance in seconds for ``exp``/``nbf``/``iat``. With ``cache``, a token that passed
    before skips the signature check but never the time checks. Raises ``InvalidToken``.
    """
    moment = resolve_now(now)
    if leeway < 0:
        raise ValueError("leeway must not be negative")
    if not isinstance(issuer, str) or not issuer:
        raise ValueError("issuer must be a non-empty string")
    audiences = _audiences(audience)
    allowed = _allowlist(algorithms)
    keys = as_jwk_set(jwks)
    if cache is None:
        result = _verify_uncached(
            token,
            issuer=issuer,
            audiences=audiences,
            keys=keys,
            algorithms=allowed,
            max_length=max_length,
        )
        _check_time(result, moment, leeway)
        return result
    if not isinstance(token, str) or len(token) > max_length:
        # Let the uncached path produce the precise error.
        return verify_access_token(
            token,
            issuer=issuer,
            audience=audiences,
            jwks=keys,
            algorithms=allowed,
            leeway=leeway,
            now=moment,
            max_length=max_length,
        )
    digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
    context: tuple[object, ...] = (issuer, audiences, allowed, keys.generation, max_length)
    hit = cache.get(digest, context)
    if hit is not None:
        try:
            _check_time(hit, moment, leeway)
        except InvalidToken:
            if moment >= hit.expires_at + leeway:
                cache.discard(digest, context)
            raise
        return _detached(hit)
    result = _verify_uncached(
        token,
        issuer=issuer,
        audiences=audiences,
        keys=keys,
        algorithms=allowed,
        max_length=max_length,
    )
    _check_time(result, moment, leeway)
    cache.put(digest, context, _detached(result))
    return result


class TokenVerifier:
    """``verify_access_token`` with its configuration fixed and, by default, its own
    ``AccessTokenCache``: the object a resource server keeps for its lifetime."""

    __slots__ = ("algorithms", "audience", "cache", "issuer", "jwks", "leeway", "max_length")

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Sequence[str],
        jwks: JWKSet | Mapping[str, Any],
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        leeway: float = 0,
        cache: AccessTokenCache | bool | None = True,
        max_length: int = _jws.MAX_TOKEN_LENGTH,
    ) -> None:
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("issuer must be a non-empty string")
        if leeway < 0:
            raise ValueError("leeway must not be negative")
        self.issuer = issuer
        self.audience = _audiences(audience)
        self.jwks = as_jwk_set(jwks)
        self.algorithms = _allowlist(algorithms)
        self.leeway = leeway
        self.max_length = max_length
        if cache is True:
            self.cache: AccessTokenCache | None = AccessTokenCache()
        elif cache is False:
            self.cache = None
        else:
            self.cache = cache

    def __repr__(self) -> str:
        return (
            f"TokenVerifier(issuer={self.issuer!r}, audience={self.audience!r}, "
            f"algorithms={self.algorithms!r}, cached={self.cache is not None})"
        )

    def verify(self, token: object, *, now: Now = None) -> AccessToken:
        """Verify ``token`` (see ``verify_access_token``)."""
        return verify_access_token(
            token,
            issuer=self.issuer,
            audience=self.audience,
            jwks=self.jwks,
            algorithms=self.algorithms,
            leeway=self.leeway,
            now=now,
            cache=self.cache,
            max_length=self.max_length,
        )
