"""Verification key sets (RFC 7517 §5) and key selection for signed access tokens.

A ``JWKSet`` is built once from the authorization server's published JWKS and parses
every usable public key up front, so verifying a token costs a dictionary lookup, not
an EC point decode. Selection follows RFC 7515 §4.1.4 and RFC 8725 §3.1: the key is
chosen by ``kid`` and must fit the token's ``alg`` (family and curve); without a
``kid`` a key is used only when exactly one fits, never by trial and error.

Building a set is the operator's configuration, so a broken set raises ``ValueError``
(a published key with private members is refused outright: publishing one means the
key is compromised). Selection is about a presented token and raises ``InvalidToken``
with the compared values in ``details`` (``check`` is ``"kid"`` or ``"alg"``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tokenlib._cache import BoundedCache, process_cache
from tokenlib.errors import InvalidToken
from tokenlib.jwk import (
    ALGORITHMS,
    PublicKey,
    alg_matches_key,
    check_rsa_key_bounds,
    default_alg_for_key,
    jwk_thumbprint,
    load_public_jwk,
    public_jwk,
)

__all__ = ["JWKSet", "JWKSetEntry", "as_jwk_set"]

_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_EDDSA_NAMES: Final = frozenset({"EdDSA", "Ed25519"})
_MAX_KID_SHOWN: Final = 80
_generation = itertools.count(1)
_KID_TYPES: Final = frozenset({str, type(None)})


@dataclass(frozen=True, slots=True)
class JWKSetEntry:
    """One usable verification key of a set: its ``kid``, declared ``alg`` (if any),
    the parsed public key and its RFC 7638 thumbprint."""

    kid: str | None
    alg: str | None
    key: PublicKey
    thumbprint: str

    def fits(self, alg: str) -> bool:
        """True if this key may verify a JWS with ``alg`` (RFC 7517 §4.4, RFC 7518 §3)."""
        if (
            self.alg is not None
            and self.alg != alg
            and not (self.alg in _EDDSA_NAMES and alg in _EDDSA_NAMES)
        ):
            return False
        return alg_matches_key(alg, self.key)


def _shown(kid: object) -> object:
    if isinstance(kid, str) and len(kid) > _MAX_KID_SHOWN:
        return kid[:_MAX_KID_SHOWN] + "…"
    return kid


class JWKSet:
    """An immutable set of public verification keys, parsed once.

    Keys marked ``"use": "enc"``, or whose ``key_ops`` lack ``verify``, are not used for
    signatures; keys of a type tokenlib cannot verify with (e.g. X25519, RSA < 2048 bits)
    are skipped and listed in ``skipped`` with the reason, so an operator can see why a
    ``kid`` is unknown.
    """

    __slots__ = ("_by_kid", "_chosen", "_entries", "generation", "skipped")

    def __init__(
        self, entries: Iterable[JWKSetEntry], *, skipped: Sequence[tuple[str | None, str]] = ()
    ) -> None:
        self._entries: tuple[JWKSetEntry, ...] = tuple(entries)
        self._by_kid: dict[str, list[JWKSetEntry]] = {}
        for entry in self._entries:
            if entry.kid is not None:
                self._by_kid.setdefault(entry.kid, []).append(entry)
        self.skipped: tuple[tuple[str | None, str], ...] = tuple(skipped)
        # Successful selections by (kid, alg). The set never changes, so neither does
        # the answer; only a kid the set holds (or None) with a known alg gets here,
        # which bounds the memo by len(set) * len(ALGORITHMS).
        self._chosen: dict[tuple[str | None, str], JWKSetEntry] = {}
        #: A process-unique number; caches of verified tokens are keyed on it, so a new
        #: set (key rotation or removal) never reuses results verified with an old one.
        self.generation: int = next(_generation)

    @classmethod
    def from_dict(cls, jwks: Mapping[str, Any]) -> JWKSet:
        """Parse a JWKS document ``{"keys": [...]}`` (RFC 7517 §5).

        Raises ``ValueError`` if the document is malformed or any key carries private or
        symmetric members (``d``, ``p``, ``k``...): a set that publishes private key
        material is refused as a whole.
        """
        if not isinstance(jwks, Mapping):
            raise ValueError("a JWKS must be a JSON object with a 'keys' array")
        keys = jwks.get("keys")
        if not isinstance(keys, list | tuple):
            raise ValueError("a JWKS must have a 'keys' array (RFC 7517 §5.1)")
        entries: list[JWKSetEntry] = []
        skipped: list[tuple[str | None, str]] = []
        for index, jwk in enumerate(keys):
            if not isinstance(jwk, Mapping):
                raise ValueError(f"JWKS key #{index} is not a JSON object")
            private = _PRIVATE_MEMBERS.intersection(jwk)
            if private or jwk.get("kty") == "oct":
                what = ", ".join(sorted(private)) if private else "kty oct"
                raise ValueError(
                    f"JWKS key #{index} contains private or symmetric key material ({what}); "
                    "a published key set must hold public keys only"
                )
            kid = jwk.get("kid")
            if kid is not None and not isinstance(kid, str):
                raise ValueError(f"JWKS key #{index} has a non-string kid")
            alg = jwk.get("alg")
            if alg is not None and not isinstance(alg, str):
                raise ValueError(f"JWKS key #{index} has a non-string alg")
            use = jwk.get("use")
            key_ops = jwk.get("key_ops")
            if use is not None and use != "sig":
                skipped.append((kid, f"use is {use!r}, not 'sig'"))
                continue
            if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
                skipped.append((kid, "key_ops does not include 'verify'"))
                continue
            if alg is not None and alg not in ALGORITHMS:
                skipped.append((kid, f"alg {alg!r} is not a supported signature algorithm"))
                continue
            try:
                key, thumbprint = load_public_jwk(jwk, error=InvalidToken)
            except InvalidToken as exc:
                skipped.append((kid, exc.description))
                continue
            if alg is not None and not alg_matches_key(alg, key):
                raise ValueError(f"JWKS key #{index} declares alg {alg} that does not fit its key")
            entries.append(JWKSetEntry(kid, alg, key, thumbprint))
        return cls(entries, skipped=skipped)

    @classmethod
    def from_keys(cls, *keys: PublicKey, kids: Sequence[str] | None = None) -> JWKSet:
        """A set from ``cryptography`` public keys; ``kid`` defaults to the RFC 7638
        thumbprint (as ``Issuer`` does)."""
        if kids is not None and len(kids) != len(keys):
            raise ValueError("kids must have one entry per key")
        entries = []
        for i, key in enumerate(keys):
            check_rsa_key_bounds(key)
            thumb = jwk_thumbprint(key)
            entries.append(JWKSetEntry(kids[i] if kids else thumb, None, key, thumb))
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"JWKSet(kids={self.kids!r}, skipped={len(self.skipped)})"

    @property
    def kids(self) -> tuple[str | None, ...]:
        """The ``kid`` of every usable key, in document order."""
        return tuple(entry.kid for entry in self._entries)

    @property
    def entries(self) -> tuple[JWKSetEntry, ...]:
        """Every usable key."""
        return self._entries

    def to_dict(self) -> dict[str, list[dict[str, str]]]:
        """The public JWKS document for these keys (``kid``/``alg`` kept, ``use: sig``)."""
        out: list[dict[str, str]] = []
        for entry in self._entries:
            jwk = public_jwk(entry.key)
            if entry.kid is not None:
                jwk["kid"] = entry.kid
            jwk["alg"] = entry.alg or default_alg_for_key(entry.key)
            jwk["use"] = "sig"
            out.append(jwk)
        return {"keys": out}

    def select(self, kid: str | None, alg: str) -> PublicKey:
        """The key that verifies a JWS with header ``kid`` and ``alg``.

        With a ``kid``, the key with that ``kid`` that fits ``alg``; without one, the only
        key that fits ``alg``. Raises ``InvalidToken`` (``check`` ``"kid"`` or ``"alg"``)
        when there is none or the choice is ambiguous.
        """
        return self.select_entry(kid, alg).key

    def select_entry(self, kid: str | None, alg: str) -> JWKSetEntry:
        """Like ``select`` but returns the whole entry (with the thumbprint)."""
        plain = type(kid) in _KID_TYPES and type(alg) is str
        if plain:
            hit = self._chosen.get((kid, alg))
            if hit is not None:
                return hit
        entry = self._select_entry(kid, alg)
        if plain:
            self._chosen[(kid, alg)] = entry
        return entry

    def _select_entry(self, kid: str | None, alg: str) -> JWKSetEntry:
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken(
                "the token header kid is not a string",
                details={"check": "kid", "presented_type": type(kid).__name__},
            )
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise InvalidToken(
                "the token algorithm is not supported",
                details={"check": "alg", "presented": _shown(alg), "rfc": "RFC 8725 §3.1"},
            )
        if kid is not None:
            same_kid = self._by_kid.get(kid, [])
            if not same_kid:
                reasons = [reason for skid, reason in self.skipped if skid == kid]
                details: dict[str, object] = {
                    "check": "kid",
                    "presented": _shown(kid),
                    "known": [k for k in self.kids if k is not None],
                    "rfc": "RFC 7515 §4.1.4",
                }
                if reasons:
                    details["skipped_because"] = reasons[0]
                raise InvalidToken("no verification key has the token's kid", details=details)
            fitting = [entry for entry in same_kid if entry.fits(alg)]
            if not fitting:
                raise InvalidToken(
                    "the key with the token's kid does not fit the token's alg",
                    details={
                        "check": "alg",
                        "presented": alg,
                        "kid": _shown(kid),
                        "key_alg": same_kid[0].alg or default_alg_for_key(same_kid[0].key),
                    },
                )
        else:
            fitting = [entry for entry in self._entries if entry.fits(alg)]
            if not fitting:
                raise InvalidToken(
                    "no verification key fits the token's alg",
                    details={"check": "alg", "presented": alg, "keys": len(self._entries)},
                )
        if len(fitting) > 1:
            raise InvalidToken(
                "more than one verification key fits the token; a kid is needed to choose",
                details={"check": "kid", "presented": _shown(kid), "candidates": len(fitting)},
            )
        return fitting[0]


# JWKSets parsed from mappings, by canonical JSON, so passing the same dict on every call
# does not re-parse keys (and keeps one ``generation`` per content).
_SETS: Final[BoundedCache[str, JWKSet]] = process_cache("jwks.sets", 32)


def as_jwk_set(jwks: JWKSet | Mapping[str, Any]) -> JWKSet:
    """``jwks`` as a ``JWKSet``: returned as is, or parsed (and cached) from a mapping."""
    if isinstance(jwks, JWKSet):
        return jwks
    try:
        cache_key = json.dumps(jwks, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a JWKS must be JSON data: {exc}") from None
    parsed = _SETS.get(cache_key)
    if parsed is None:
        parsed = JWKSet.from_dict(jwks)
        _SETS.put(cache_key, parsed)
    return parsed
