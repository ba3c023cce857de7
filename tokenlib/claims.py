"""The validated view of a JWT access token (RFC 9068 §2.2) and its confirmation (``cnf``).

``parse_access_token_claims`` checks that every claim RFC 9068 §2.2 requires is present
with the right JSON type and turns the claims into an ``AccessToken``. It does *not*
check the signature, issuer, audience or time: ``tokenlib.bearer.verify_access_token``
does, in the order RFC 9068 §4 gives, and only then calls this.

``cnf`` (RFC 7800 §3.1) names how the token is bound: ``jkt`` to a DPoP key (RFC 9449
§6.1), ``x5t#S256`` to a client certificate (RFC 8705 §3.1); both are unpadded base64url
SHA-256 digests (43 characters). Unknown extra members are tolerated next to a known
one (Keycloak adds ``kc-jkt-type``); a ``cnf`` with *only* unknown methods is refused,
because accepting it would silently turn a bound token into a bearer token.

Errors are ``InvalidToken`` whose ``details["check"]`` names the claim (``"sub"``,
``"aud"``, ``"scope"``, ``"cnf"``...).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

from tokenlib.binding import Binding, Confirmation
from tokenlib.errors import InvalidToken

__all__ = [
    "REGISTERED_CLAIMS",
    "REQUIRED_CLAIMS",
    "AccessToken",
    "Binding",
    "build_access_token",
    "is_sha256_b64url",
    "parse_access_token_claims",
    "parse_cnf",
    "parse_scope",
]

#: RFC 9068 §2.2: claims every JWT access token MUST carry.
REQUIRED_CLAIMS: Final = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
#: Claims whose meaning tokenlib defines; ``Issuer`` refuses extra claims that override them.
REGISTERED_CLAIMS: Final = frozenset(
    {*REQUIRED_CLAIMS, "nbf", "scope", "cnf"},
)
_SHA256_B64URL: Final = re.compile(r"[A-Za-z0-9_-]{43}")
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_SCOPE: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")
_RFC: Final = "RFC 9068 §2.2"
_MISSING: Final = object()
_INT_LIMIT: Final = 2**62


def is_sha256_b64url(value: object) -> bool:
    """True if ``value`` is unpadded base64url of 32 bytes (a SHA-256 digest): 43
    characters of the base64url alphabet.

    Non-zero padding bits in the last character are tolerated here (the RFC 8705 §3.1
    example value has them); such a value can never equal a computed thumbprint, so the
    binding check refuses it later with both values in the explain view."""
    return isinstance(value, str) and _SHA256_B64URL.fullmatch(value) is not None


def _fail(claim: str, description: str, **details: object) -> InvalidToken:
    return InvalidToken(description, details={"check": claim, **details})


def _string(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name, _MISSING)
    if type(value) is str and value:
        return value
    if value is _MISSING:
        raise _fail(name, f"the access token has no {name} claim", problem="missing", rfc=_RFC)
    if not isinstance(value, str) or not value:
        raise _fail(
            name,
            f"the access token {name} claim is not a non-empty string",
            problem="type",
            presented_type=type(value).__name__,
            rfc=_RFC,
        )
    return value


def _numeric_date(claims: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    """A NumericDate (RFC 7519 §2): a JSON number, truncated to whole seconds."""
    value = claims.get(name, _MISSING)
    if type(value) is int and -_INT_LIMIT < value < _INT_LIMIT:
        return value
    if value is _MISSING:
        if required:
            raise _fail(name, f"the access token has no {name} claim", problem="missing", rfc=_RFC)
        return None
    if not _is_number(value):
        raise _fail(
            name,
            f"the access token {name} claim is not a NumericDate",
            problem="type",
            presented_type=type(value).__name__,
            rfc="RFC 7519 §2",
        )
    return math.floor(value)


def _is_number(value: object) -> TypeGuard[int | float]:
    """A finite JSON number a float can hold (a larger int is refused, not an
    ``OverflowError``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _audience(claims: Mapping[str, Any]) -> tuple[str, ...]:
    if "aud" not in claims:
        raise _fail("aud", "the access token has no aud claim", problem="missing", rfc=_RFC)
    value = claims["aud"]
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list) and value and all(isinstance(item, str) and item for item in value):
        return tuple(value)
    raise _fail(
        "aud",
        "the access token aud claim is not a string or a non-empty array of strings",
        problem="type",
        presented_type=type(value).__name__,
        rfc="RFC 7519 §4.1.3",
    )


def parse_scope(value: object) -> frozenset[str]:
    """The scopes of a space-delimited ``scope`` claim (RFC 9068 §2.2.3.1, RFC 6749 §3.3).

    Each scope-token must be 1+ characters of %x21 / %x23-5B / %x5D-7E separated by
    single spaces; anything else is refused (``check`` ``"scope"``).
    """
    if not isinstance(value, str):
        raise _fail(
            "scope",
            "the access token scope claim is not a space-delimited string",
            problem="type",
            presented_type=type(value).__name__,
            rfc="RFC 9068 §2.2.3.1",
        )
    if value == "":
        return frozenset()
    parts = value.split(" ")
    if _SCOPE.fullmatch(value) is not None:
        return frozenset(parts)
    for position, part in enumerate(parts):
        if _SCOPE_TOKEN.fullmatch(part) is None:
            raise _fail(
                "scope",
                "the access token scope claim has an empty or invalid scope-token",
                problem="syntax",
                position=position,
                rfc="RFC 6749 §3.3",
            )
    return frozenset(parts)


def parse_cnf(value: object) -> tuple[str | None, str | None]:
    """``(jkt, x5t#S256)`` from a ``cnf`` claim value (RFC 7800 §3.1): the tuple form of
    :meth:`tokenlib.binding.Confirmation.parse` (same checks, same errors)."""
    confirmation = Confirmation.parse(value)
    return confirmation.jkt, confirmation.x5t_s256


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A verified JWT access token (RFC 9068): its header, claims and the parsed fields.

    The raw token is never stored. ``header`` and ``claims`` are the decoded JSON objects
    (the typed fields above are what to rely on; nested claim values are not copied).
    """

    header: dict[str, Any]
    claims: dict[str, Any]
    issuer: str
    subject: str
    client_id: str
    audience: tuple[str, ...]
    scopes: frozenset[str]
    expires_at: int
    issued_at: int
    jti: str
    jkt: str | None = None
    x5t_s256: str | None = None
    not_before: int | None = None

    @property
    def binding(self) -> Binding:
        """How the token is sender-constrained (:class:`~tokenlib.binding.Binding`, equal
        to ``"bearer"``, ``"dpop"`` (``cnf.jkt``), ``"mtls"`` (``cnf.x5t#S256``) or
        ``"dpop+mtls"`` (both))."""
        return Binding.of(jkt=self.jkt, x5t_s256=self.x5t_s256)

    @property
    def confirmation(self) -> Confirmation:
        """The parsed ``cnf`` (:class:`~tokenlib.binding.Confirmation`; both members
        ``None`` for a bearer token)."""
        return Confirmation(jkt=self.jkt, x5t_s256=self.x5t_s256)

    @property
    def cnf(self) -> dict[str, Any] | None:
        """The ``cnf`` claim as issued (unknown members included), or ``None``."""
        value = self.claims.get("cnf")
        return dict(value) if isinstance(value, Mapping) else None

    def has_scopes(self, *required: str) -> bool:
        """True if every scope in ``required`` was granted."""
        return self.scopes.issuperset(required)

    def __repr__(self) -> str:
        return (
            f"AccessToken(issuer={self.issuer!r}, subject={self.subject!r}, "
            f"client_id={self.client_id!r}, binding={self.binding.value!r}, jti={self.jti!r}, "
            f"expires_at={self.expires_at})"
        )


def parse_access_token_claims(header: Mapping[str, Any], claims: Mapping[str, Any]) -> AccessToken:
    """Type-check the RFC 9068 §2.2 claims and build an ``AccessToken``.

    Required: ``iss``, ``exp``, ``aud``, ``sub``, ``client_id``, ``iat``, ``jti``
    (strings, NumericDates, a string or array of strings for ``aud``). Optional:
    ``scope`` (space-delimited string), ``nbf``, ``cnf``. Raises ``InvalidToken``.
    """
    return build_access_token(dict(header), dict(claims))


def build_access_token(header: dict[str, Any], claims: dict[str, Any]) -> AccessToken:
    """``parse_access_token_claims`` for dicts the caller owns (freshly decoded ones):
    the ``AccessToken`` keeps them without copying."""
    get = claims.get
    issuer = _string(claims, "iss")
    expires_at = _numeric_date(claims, "exp", required=True)
    audience = _audience(claims)
    subject = _string(claims, "sub")
    client_id = _string(claims, "client_id")
    issued_at = _numeric_date(claims, "iat", required=True)
    jti = _string(claims, "jti")
    not_before = _numeric_date(claims, "nbf", required=False)
    scope = get("scope", _MISSING)
    scopes = frozenset() if scope is _MISSING else parse_scope(scope)
    cnf = get("cnf", _MISSING)
    jkt, x5t = (None, None) if cnf is _MISSING else parse_cnf(cnf)
    assert expires_at is not None
    assert issued_at is not None
    token = _new(AccessToken)
    _set = _ACCESS_TOKEN_SLOTS
    _set[0](token, header)
    _set[1](token, claims)
    _set[2](token, issuer)
    _set[3](token, subject)
    _set[4](token, client_id)
    _set[5](token, audience)
    _set[6](token, scopes)
    _set[7](token, expires_at)
    _set[8](token, issued_at)
    _set[9](token, jti)
    _set[10](token, jkt)
    _set[11](token, x5t)
    _set[12](token, not_before)
    return token


def _slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of frozen, slotted dataclass ``cls``, whose fields must be
    exactly ``names`` in order (checked at import, so a new field cannot be missed).

    A hot path builds its result with ``object.__new__`` and these: the same object the
    generated ``__init__`` makes (which sets each field through ``object.__setattr__``),
    in half the time. Only for classes without ``__post_init__``.
    """
    fields = tuple(field.name for field in dataclasses.fields(cls))
    if fields != names or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} fields are {fields}, not {names}")
    return tuple(cls.__dict__[name].__set__ for name in names)


_new: Final = object.__new__
_ACCESS_TOKEN_SLOTS: Final = _slot_setters(
    AccessToken,
    (
        "header",
        "claims",
        "issuer",
        "subject",
        "client_id",
        "audience",
        "scopes",
        "expires_at",
        "issued_at",
        "jti",
        "jkt",
        "x5t_s256",
        "not_before",
    ),
)
