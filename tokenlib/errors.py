"""One exception hierarchy for everything a token, a proof or a request can get wrong.

Every error carries the RFC error code a server must send (``.error``), the HTTP status
(``.status_code``), the exact ``WWW-Authenticate`` value (RFC 6750 §3, RFC 9449 §7.1),
extra response headers such as a fresh ``DPoP-Nonce`` (RFC 9449 §8/§9), and an
*explain view* (``.details``): the values that were compared, so an operator can tell a
client clock drift from a late send or a proxy that rewrote the URL.

``str(error)`` is safe to log: it never contains a token, a proof or key material.
Details hold only derived values (normalised URLs, times, thumbprints and hashes).

Programmer errors (a wrong argument type, an unsupported algorithm asked for by the
caller) are plain ``TypeError``/``ValueError``; ``TokenError`` is for what a peer sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import ClassVar

__all__ = [
    "InsufficientScope",
    "InvalidDPoPProof",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidToken",
    "MissingToken",
    "ReplayDetected",
    "ReplayQuotaExceeded",
    "ReplayStateUnavailable",
    "TokenError",
    "UnauthorizedClient",
    "UseDPoPNonce",
]

# RFC 6750 §3: error_description uses %x20-21 / %x23-5B / %x5D-7E (no '"' and no '\').
_UNSAFE_QUOTED = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_MAX_DESCRIPTION = 200


def _quote(value: str) -> str:
    """Make ``value`` safe inside a quoted auth-param (RFC 6750 §3 character set)."""
    return _UNSAFE_QUOTED.sub("?", value)[:_MAX_DESCRIPTION]


class TokenError(Exception):
    """Root of every error tokenlib raises about a presented token, proof or request.

    Subclasses fix ``error`` (the RFC code) and a default ``status_code``. ``scheme``
    chooses the challenge (``Bearer`` per RFC 6750 §3, ``DPoP`` per RFC 9449 §7.1);
    ``algs`` is advertised in a DPoP challenge; ``details`` is the explain view.
    """

    error: ClassVar[str] = "invalid_request"
    default_status: ClassVar[int] = 400
    include_error_in_challenge: ClassVar[bool] = True

    def __init__(
        self,
        description: str,
        *,
        details: Mapping[str, object] | None = None,
        scheme: str = "Bearer",
        algs: Sequence[str] = (),
        realm: str | None = None,
        headers: Mapping[str, str] | None = None,
        status_code: int | None = None,
        extra_challenges: Sequence[str] = (),
        endpoint: str = "resource",
    ) -> None:
        super().__init__(description)
        self.description = description
        self.details: dict[str, object] = dict(details or {})
        self.scheme = scheme
        self.algs = tuple(algs)
        self.realm = realm
        self._headers: dict[str, str] = dict(headers or {})
        self.status_code = self.default_status if status_code is None else status_code
        self.extra_challenges = tuple(extra_challenges)
        self.endpoint = endpoint

    def __str__(self) -> str:
        return f"{self.error}: {self.description}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(error={self.error!r}, description={self.description!r})"

    @property
    def check(self) -> str | None:
        """The name of the failed check (``"htu"``, ``"iat"``, ``"ath"``...), if known."""
        value = self.details.get("check")
        return value if isinstance(value, str) else None

    def challenge(self) -> str:
        """This error as one auth challenge (RFC 6750 §3 / RFC 9449 §7.1)."""
        params: list[str] = []
        if self.realm is not None:
            params.append(f'realm="{_quote(self.realm)}"')
        if self.include_error_in_challenge:
            params.append(f'error="{self.error}"')
            params.append(f'error_description="{_quote(self.description)}"')
        required = self.details.get("required") if self.error == "insufficient_scope" else None
        if isinstance(required, list | tuple | frozenset | set) and required:
            # RFC 6750 §3: the scope the request needs, space-delimited (RFC 6749 §3.3).
            params.append(f'scope="{_quote(" ".join(sorted(map(str, required))))}"')
        if self.scheme.lower() == "dpop" and self.algs:
            params.append(f'algs="{" ".join(self.algs)}"')
        return f"{self.scheme} " + ", ".join(params) if params else self.scheme

    @property
    def www_authenticate(self) -> str:
        """The exact ``WWW-Authenticate`` value: this error's challenge, then any others
        the server also offers (a server accepting Bearer and DPoP lists both)."""
        return ", ".join((self.challenge(), *self.extra_challenges))

    @property
    def headers(self) -> dict[str, str]:
        """Response headers to send with this error (``WWW-Authenticate``, ``DPoP-Nonce``,
        ``Cache-Control``). A token endpoint answers with a JSON body (RFC 6749 §5.2)
        and sends no ``WWW-Authenticate``."""
        out = dict(self._headers)
        if self.endpoint == "resource":
            out["WWW-Authenticate"] = self.www_authenticate
        out.setdefault("Cache-Control", "no-store")
        return out

    def json_body(self) -> dict[str, str]:
        """The RFC 6749 §5.2 error body (``error``, ``error_description``)."""
        return {"error": self.error, "error_description": self.description}

    def explain(self) -> str:
        """A human-readable, multi-line account of what was compared and why it failed."""
        lines = [
            f"{type(self).__name__} [{self.error}, HTTP {self.status_code}]",
            f"  {self.description}",
        ]
        width = max((len(k) for k in self.details), default=0)
        lines.extend(f"  {key.ljust(width)} : {value}" for key, value in self.details.items())
        return "\n".join(lines)

    def with_context(
        self,
        *,
        scheme: str | None = None,
        algs: Sequence[str] | None = None,
        realm: str | None = None,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
        extra_challenges: Sequence[str] | None = None,
        endpoint: str | None = None,
    ) -> TokenError:
        """Fill in what only the server knows (its schemes, algs, realm, nonce header).

        Returns ``self`` so that ``raise err.with_context(...) from err`` keeps the type.
        """
        if scheme is not None:
            self.scheme = scheme
        if algs is not None:
            self.algs = tuple(algs)
        if realm is not None:
            self.realm = realm
        if status_code is not None:
            self.status_code = status_code
        if headers:
            self._headers.update(headers)
        if extra_challenges is not None:
            self.extra_challenges = tuple(extra_challenges)
        if endpoint is not None:
            if endpoint not in ("resource", "token"):
                raise ValueError("endpoint must be 'resource' or 'token'")
            self.endpoint = endpoint
            if endpoint == "token" and status_code is None and self.status_code == 401:
                self.status_code = 400
        return self


class InvalidRequest(TokenError):
    """Malformed request: duplicate ``Authorization``/``DPoP`` headers, an unknown
    scheme, a missing parameter (RFC 6750 §3.1 ``invalid_request``, HTTP 400)."""

    error = "invalid_request"
    default_status = 400


class InvalidGrant(TokenError):
    """At the token endpoint: the grant (code or refresh token) is bound to another key
    (RFC 6749 §5.2 ``invalid_grant``, HTTP 400, JSON body, no ``WWW-Authenticate``)."""

    error = "invalid_grant"
    default_status = 400

    def __init__(self, description: str, **kwargs: object) -> None:
        kwargs.setdefault("endpoint", "token")
        super().__init__(description, **kwargs)  # type: ignore[arg-type]


class UnauthorizedClient(TokenError):
    """At a token-style endpoint: the authenticated client may not do this with this token,
    e.g. revoke a token issued to another client (RFC 7009 §2.1, RFC 6749 §5.2
    ``unauthorized_client``, HTTP 400, JSON body, no ``WWW-Authenticate``)."""

    error = "unauthorized_client"
    default_status = 400

    def __init__(self, description: str, **kwargs: object) -> None:
        kwargs.setdefault("endpoint", "token")
        super().__init__(description, **kwargs)  # type: ignore[arg-type]


class InvalidToken(TokenError):
    """The access token is expired, revoked, malformed, for someone else, or not bound
    to what the client proved (RFC 6750 §3.1, RFC 8705 §3 ``invalid_token``, HTTP 401)."""

    error = "invalid_token"
    default_status = 401


class MissingToken(TokenError):
    """The request carries no credentials at all. RFC 6750 §3.1: the challenge then names
    the schemes (and ``realm``/``algs``) but SHOULD NOT include an error code."""

    error = "invalid_request"
    default_status = 401
    include_error_in_challenge = False


class InsufficientScope(TokenError):
    """The token is valid but lacks a scope the resource needs (RFC 6750 §3.1, 403)."""

    error = "insufficient_scope"
    default_status = 403


class InvalidDPoPProof(TokenError):
    """The DPoP proof fails a check of RFC 9449 §4.3 (``invalid_dpop_proof``).

    401 at a resource server (RFC 9449 §7.1); a token endpoint answers 400 (§5).
    """

    error = "invalid_dpop_proof"
    default_status = 401

    def __init__(self, description: str, **kwargs: object) -> None:
        kwargs.setdefault("scheme", "DPoP")
        super().__init__(description, **kwargs)  # type: ignore[arg-type]


class ReplayDetected(InvalidDPoPProof):
    """The proof's ``jti`` was already used within the acceptance window (RFC 9449 §11.1)."""


class ReplayQuotaExceeded(InvalidDPoPProof):
    """One key or client has more live proofs in the replay store than its quota allows.

    The store keeps every ``jti`` for the acceptance window (RFC 9449 §11.1); a per-owner
    quota keeps one client from filling it for everyone. Only that owner is refused
    (HTTP 429 with ``Retry-After``); other clients are unaffected.
    """

    default_status = 429

    def __init__(self, description: str, *, retry_after: int = 1, **kwargs: object) -> None:
        super().__init__(description, **kwargs)
        self.retry_after = max(1, int(retry_after))

    @property
    def headers(self) -> dict[str, str]:
        out = dict(super().headers)
        out.setdefault("Retry-After", str(self.retry_after))
        return out


class UseDPoPNonce(TokenError):
    """The server requires a nonce and the proof has none, or a stale one
    (RFC 9449 §8 at the AS: HTTP 400; §9 at the RS: HTTP 401). ``headers`` carries a
    fresh ``DPoP-Nonce`` for the client to retry with."""

    error = "use_dpop_nonce"
    default_status = 401

    def __init__(self, description: str, **kwargs: object) -> None:
        kwargs.setdefault("scheme", "DPoP")
        super().__init__(description, **kwargs)  # type: ignore[arg-type]

    @property
    def nonce(self) -> str | None:
        """The fresh nonce the client should use, if the server supplied one."""
        return self._headers.get("DPoP-Nonce")


class ReplayStateUnavailable(TokenError):
    """The shared replay cache cannot be reached. Verification fails closed: the request
    is refused (HTTP 503) rather than accepted without replay protection."""

    error = "temporarily_unavailable"
    default_status = 503

    @property
    def headers(self) -> dict[str, str]:
        out = dict(self._headers)
        out.setdefault("Retry-After", "1")
        out.setdefault("Cache-Control", "no-store")
        return out
