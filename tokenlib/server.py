"""A resource server's request check: Bearer, DPoP-bound and certificate-bound tokens.

:class:`ResourceServer` takes a request (method, URL, headers, optional client
certificate), decides which mechanism the client used, runs every check of RFC 6750,
RFC 9068 §4, RFC 9449 §4.3/§7/§9/§11 and RFC 8705 §3, and returns a :class:`Grant` —
or raises a :class:`~tokenlib.errors.TokenError` whose ``status_code``, ``headers``
(exact ``WWW-Authenticate``, a fresh ``DPoP-Nonce``) and ``details`` are ready to send
and to log.

Decisions (each tested):

* Two ``Authorization`` fields → ``invalid_request`` 400, both challenges carrying the
  error (RFC 9449 §7.2 Figure 19). Two ``DPoP`` fields (or one holding a comma list) →
  ``invalid_dpop_proof`` (§4.3 check 1).
* No ``Authorization`` → :class:`~tokenlib.errors.MissingToken` (401, every offered
  challenge, no error code: RFC 6750 §3.1, RFC 9449 Figure 17). An unsupported scheme
  is treated the same way.
* ``DPoP`` scheme: a ``DPoP`` proof is required (§7.1, else ``invalid_dpop_proof``); the
  token must carry ``cnf.jkt`` (else ``invalid_token``); the proof must pass every
  check with ``ath`` and its key must match ``cnf.jkt`` (else ``invalid_token``, as in
  RFC 9449 Figure 16).
* ``Bearer`` scheme with a DPoP-bound token → ``invalid_token`` (§7.2 downgrade). A
  ``DPoP`` header next to a *bearer* token is ignored: the proof cannot add anything to
  an unbound token, and §7.2 expects such tokens to keep working.
* ``cnf.x5t#S256`` (alone or next to ``jkt``): the request's client certificate must
  match (RFC 8705 §3); with both members, both bindings must hold. Unknown ``cnf``
  members are tolerated. The binding checks are one table (``_BINDING_CHECKS``: per
  method, its ``cnf`` member, the scheme that must carry it, how it is checked), kept
  in step with :data:`tokenlib.binding.CNF_MEMBERS` at import.
* ``public_base_url`` set → ``htu`` is that URL plus the request path; ``Host`` and
  ``X-Forwarded-*`` are never read (RFC 9449 §4.3 check 9 behind proxies). Without it
  ``url`` must be the absolute URL the client used.
* The proof's ``jti`` is recorded in the replay store (owner = the proof key's ``jkt``,
  RFC 9449 §11.1) only after every other check passed; :meth:`ResourceServer.averify`
  runs the same checks and awaits an :class:`~tokenlib.replay.AsyncReplayCache`.
* ``require_nonce`` → a proof without a valid, fresh server nonce gets
  ``use_dpop_nonce`` (401) with a fresh ``DPoP-Nonce``; once required, never accepted
  without (§9, §11.3). A successful response carries a new nonce when the step rotated.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Final, NamedTuple, cast

from tokenlib._headers import Headers, collect, multiple_dpop_fields
from tokenlib._htu import normalize_htu
from tokenlib._time import Now, resolve_now
from tokenlib.bearer import TokenVerifier
from tokenlib.binding import CNF_MEMBERS, Binding
from tokenlib.claims import AccessToken, _slot_setters
from tokenlib.dpop import DPoPPolicy, DPoPProof, check_proof, replay_detected, replay_key
from tokenlib.errors import (
    InsufficientScope,
    InvalidDPoPProof,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    TokenError,
    UseDPoPNonce,
)
from tokenlib.jwk import DEFAULT_ALGORITHMS
from tokenlib.jwks import JWKSet
from tokenlib.mtls import (
    CertificateInput,
    verify_certificate_binding,
    verify_thumbprint_binding,
)
from tokenlib.nonce import NonceManager
from tokenlib.replay import (
    AsyncReplayCache,
    MemoryReplayCache,
    NoReplayCheck,
    ReplayCache,
    check_acceptance_window,
    is_async_replay_cache,
)

__all__ = ["Grant", "ResourceServer"]

# RFC 9110 §11.4 credentials = auth-scheme [ 1*SP token68 ]; RFC 6750 §2.1 b64token.
_CREDENTIALS: Final = re.compile(r"\A([!#$%&'*+\-.^_`|~0-9A-Za-z]+) +([A-Za-z0-9\-._~+/]+=*)\Z")
_SCHEMES: Final = {"bearer": "Bearer", "dpop": "DPoP"}
_ABSOLUTE: Final = re.compile(r"\A[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")


@dataclass(frozen=True, slots=True)
class Grant:
    """A request that passed every check: who, what, and how the token was bound.

    ``binding`` is a :class:`~tokenlib.binding.Binding` (equal to ``"bearer"``,
    ``"dpop"``, ``"mtls"`` or ``"dpop+mtls"``).
    ``response_headers`` should be added to the successful response (e.g. a rotated
    ``DPoP-Nonce``, RFC 9449 §8.2).
    """

    token: AccessToken
    binding: Binding
    subject: str
    client_id: str
    scopes: frozenset[str]
    proof: DPoPProof | None
    cert_thumbprint: str | None
    claims: dict[str, Any]
    response_headers: dict[str, str] = field(default_factory=dict)


_new: Final = object.__new__
# Grant(...) without the generated __init__'s per-field object.__setattr__ calls.
_GRANT_SLOTS: Final = _slot_setters(
    Grant,
    (
        "token",
        "binding",
        "subject",
        "client_id",
        "scopes",
        "proof",
        "cert_thumbprint",
        "claims",
        "response_headers",
    ),
)


class ResourceServer:
    """Verify protected-resource requests for one audience.

    ``issuer``/``audience``/``jwks``/``algorithms``/``leeway`` configure access-token
    verification (RFC 9068 §4); validated tokens are cached by hash until they expire
    (``token_cache``), time checks re-run on every request. ``schemes`` lists the
    accepted authorization schemes (``"DPoP"``, ``"Bearer"``), advertised in challenges
    in that order. ``policy`` is the :class:`~tokenlib.dpop.DPoPPolicy`.

    ``replay_cache``: where proof ``jti`` values are recorded (a
    :class:`~tokenlib.replay.ReplayCache`, or an :class:`~tokenlib.replay.AsyncReplayCache`
    for :meth:`averify`), owned by the proof key's ``jkt``; ``None`` gives this server its
    own :class:`~tokenlib.replay.MemoryReplayCache` — 100,000 live proofs, at most 5,000
    per key (≈ 13.9 proofs/s per key sustained over the default 360 s window); a key
    over its quota gets 429 with ``Retry-After`` while other clients are unaffected.
    Replay protection is never off here (``NO_REPLAY_CHECK`` is refused); share one
    store between instances. ``require_nonce``: demand server nonces from
    ``nonce_manager`` (one with a random secret is created when omitted — give every
    instance the same manager secret).
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Sequence[str],
        jwks: JWKSet | Mapping[str, Any],
        replay_cache: ReplayCache | AsyncReplayCache | None = None,
        require_nonce: bool = False,
        nonce_manager: NonceManager | None = None,
        policy: DPoPPolicy | None = None,
        public_base_url: str | None = None,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        leeway: float = 0,
        realm: str | None = None,
        schemes: Sequence[str] = ("DPoP", "Bearer"),
        token_cache: bool = True,
    ) -> None:
        canonical = []
        for scheme in schemes:
            name = _SCHEMES.get(scheme.lower()) if isinstance(scheme, str) else None
            if name is None:
                raise ValueError(f"unsupported scheme {scheme!r}; use 'DPoP' and/or 'Bearer'")
            canonical.append(name)
        if not canonical or len(set(canonical)) != len(canonical):
            raise ValueError("schemes must name DPoP and/or Bearer once each")
        self.schemes: tuple[str, ...] = tuple(canonical)
        self.verifier = TokenVerifier(
            issuer=issuer,
            audience=audience,
            jwks=jwks,
            algorithms=algorithms,
            leeway=leeway,
            cache=token_cache,
        )
        self.policy = DPoPPolicy() if policy is None else policy
        if isinstance(cast(object, replay_cache), NoReplayCheck):
            raise ValueError(
                "a ResourceServer always checks replays (RFC 9449 §11.1); pass a replay "
                "store, or None for a private MemoryReplayCache"
            )
        self.replay_cache: ReplayCache | AsyncReplayCache = (
            MemoryReplayCache() if replay_cache is None else replay_cache
        )
        if not isinstance(self.replay_cache, ReplayCache | AsyncReplayCache):
            raise TypeError("replay_cache must have a check_and_store method (ReplayCache)")
        self._async_replay = is_async_replay_cache(self.replay_cache)
        check_acceptance_window(
            self.replay_cache, self.policy.acceptance_window, server="ResourceServer"
        )
        if require_nonce and nonce_manager is None:
            nonce_manager = NonceManager.with_random_secret()
        self.require_nonce = require_nonce
        self.nonce_manager = nonce_manager
        self.realm = realm
        self.public_base_url: str | None = None
        if public_base_url is not None:
            if _ABSOLUTE.match(public_base_url) is None or any(c in public_base_url for c in "?#"):
                raise ValueError("public_base_url must be an absolute http(s) URL without query")
            normalize_htu(public_base_url)  # raises ValueError when malformed
            self.public_base_url = public_base_url.rstrip("/")

    def __repr__(self) -> str:
        return (
            f"ResourceServer(issuer={self.verifier.issuer!r}, audience={self.verifier.audience!r}, "
            f"schemes={self.schemes!r}, require_nonce={self.require_nonce})"
        )

    # ------------------------------------------------------------------ challenges

    def _challenge(self, scheme: str) -> str:
        params = []
        if self.realm is not None:
            params.append(f'realm="{_quoted(self.realm)}"')
        if scheme == "DPoP":
            params.append(f'algs="{" ".join(self.policy.algorithms)}"')
        return f"{scheme} {', '.join(params)}" if params else scheme

    def _fresh_nonce_headers(self, now: float) -> dict[str, str]:
        if self.require_nonce and self.nonce_manager is not None:
            return self.nonce_manager.response_headers(now=now)
        return {}

    def _contextualise(self, err: TokenError, scheme: str | None, now: float) -> TokenError:
        """Give ``err`` this server's challenges (RFC 9449 §7.1/§7.2, RFC 6750 §3)."""
        if isinstance(err, UseDPoPNonce) and err.details.get("presented") is None:
            err.description = "Resource server requires nonce in DPoP proof"  # RFC 9449 Fig. 24
        if scheme is None or isinstance(err, MissingToken):
            scheme = self.schemes[0]
            err.with_context(scheme=scheme)
        elif isinstance(err, InvalidRequest) and err.check == "authorization":
            # Figure 19: ambiguous authentication, every challenge carries the error.
            others = []
            for other in self.schemes:
                if other != scheme:
                    twin = InvalidRequest(err.description, scheme=other, realm=self.realm)
                    if other == "DPoP":
                        twin.with_context(algs=self.policy.algorithms)
                    others.append(twin.challenge())
            err.with_context(
                scheme=scheme,
                algs=self.policy.algorithms if scheme == "DPoP" else (),
                realm=self.realm,
                extra_challenges=others,
            )
            return err
        else:
            err.with_context(scheme=scheme)
        headers = self._fresh_nonce_headers(now) if "DPoP" in self.schemes else {}
        return err.with_context(
            algs=self.policy.algorithms if scheme == "DPoP" else (),
            realm=self.realm,
            headers=headers,
            extra_challenges=[self._challenge(s) for s in self.schemes if s != scheme],
        )

    # ---------------------------------------------------------------------- verify

    def htu_for(self, url: str) -> str:
        """The URI a proof must name for a request to ``url`` (``public_base_url`` plus
        the request path when configured; never derived from ``Host`` headers)."""
        if self.public_base_url is None:
            if _ABSOLUTE.match(url) is None:
                raise ValueError("url must be absolute unless public_base_url is configured")
            return url
        match = _ABSOLUTE.match(url)
        path = url[match.end() :] if match is not None else url
        path = re.split(r"[?#]", path, maxsplit=1)[0]
        if not path.startswith("/"):
            path = "/" + path
        return self.public_base_url + path

    def verify(
        self,
        method: str,
        url: str,
        headers: Headers,
        *,
        client_cert: CertificateInput | None = None,
        client_cert_thumbprint: str | None = None,
        now: Now = None,
        required_scopes: Iterable[str] = (),
    ) -> Grant:
        """Check one request and return its :class:`Grant` (see the module docstring).

        ``url`` is the request URL (absolute, or just the path and query when
        ``public_base_url`` is configured). ``client_cert`` is the mutual-TLS client
        certificate, from the TLS stack or a trusted proxy's ``Client-Cert`` header;
        ``client_cert_thumbprint`` is its base64url SHA-256 (``x5t#S256``) when a
        trusted proxy adapter forwards only the hash (RFC 8705 §3; give one or the
        other, never both). A proof is recorded in the replay cache (owner = its
        ``jkt``) only once every other check passed. Needs a synchronous
        :class:`~tokenlib.replay.ReplayCache`; with an
        :class:`~tokenlib.replay.AsyncReplayCache` use :meth:`averify`.
        """
        grant, moment = self._checks(
            method, url, headers, client_cert, client_cert_thumbprint, now, required_scopes
        )
        proof = grant.proof
        if proof is not None:
            if self._async_replay:
                raise TypeError(
                    "this ResourceServer has an AsyncReplayCache: call `await averify(...)`"
                )
            self._replay_outcome(self._replay_step(proof, moment), proof, moment)
        return grant

    async def averify(
        self,
        method: str,
        url: str,
        headers: Headers,
        *,
        client_cert: CertificateInput | None = None,
        client_cert_thumbprint: str | None = None,
        now: Now = None,
        required_scopes: Iterable[str] = (),
    ) -> Grant:
        """:meth:`verify` for asyncio servers: the same checks, run inline (they are CPU
        work of tens of microseconds, cheaper than a thread hop), then the replay cache
        awaited when it is an :class:`~tokenlib.replay.AsyncReplayCache` (a synchronous
        cache is called directly, so it should not block: the memory store does not)."""
        grant, moment = self._checks(
            method, url, headers, client_cert, client_cert_thumbprint, now, required_scopes
        )
        proof = grant.proof
        if proof is not None:
            answer = self._replay_step(proof, moment)
            if inspect.isawaitable(answer):
                try:
                    answer = await answer
                except TokenError as err:
                    raise self._contextualise(err, "DPoP", moment) from None
            self._replay_outcome(answer, proof, moment)
        return grant

    def _replay_step(self, proof: DPoPProof, moment: float) -> object:
        """Record ``proof`` (RFC 9449 §11.1, owner = its ``jkt``): the store's answer, a
        bool or, from an :class:`~tokenlib.replay.AsyncReplayCache`, an awaitable."""
        try:
            return self.replay_cache.check_and_store(
                replay_key(proof.jkt, proof.jti),
                expires_at=proof.replay_expires_at,
                now=moment,
                owner=proof.jkt,
            )
        except TokenError as err:  # quota exceeded, store unavailable
            raise self._contextualise(err, "DPoP", moment) from None

    def _replay_outcome(self, fresh: object, proof: DPoPProof, moment: float) -> None:
        if not fresh:
            raise self._contextualise(replay_detected(proof), "DPoP", moment)

    def _checks(
        self,
        method: str,
        url: str,
        headers: Headers,
        client_cert: CertificateInput | None,
        client_cert_thumbprint: str | None,
        now: Now,
        required_scopes: Iterable[str],
    ) -> tuple[Grant, float]:
        """Every check of :meth:`verify` except the replay cache (shared by
        :meth:`averify`); returns the grant and the resolved clock."""
        if client_cert is not None and client_cert_thumbprint is not None:
            raise ValueError("pass client_cert or client_cert_thumbprint, not both")
        moment = resolve_now(now)
        scheme: str | None = None
        try:
            authorization, dpop_values = collect(headers)
            if len(authorization) > 1:
                scheme = _scheme_of(authorization[0], self.schemes)
                raise InvalidRequest(
                    "Multiple methods used to include access token",
                    details={
                        "check": "authorization",
                        "count": len(authorization),
                        "rfc": "RFC 9449 §7.2",
                    },
                )
            if len(dpop_values) > 1 and "DPoP" in self.schemes:
                scheme = "DPoP"
                raise multiple_dpop_fields(len(dpop_values))
            if not authorization:
                raise MissingToken(
                    "no access token was presented",
                    details={"check": "authorization", "rfc": "RFC 6750 §3.1"},
                )
            match = _CREDENTIALS.match(authorization[0])
            if match is None:
                raise InvalidRequest(
                    "the Authorization header is malformed",
                    details={
                        "check": "authorization_syntax",
                        "rfc": "RFC 6750 §2.1, RFC 9449 §7.1",
                    },
                )
            scheme = _SCHEMES.get(match.group(1).lower())
            if scheme is None or scheme not in self.schemes:
                scheme = None
                raise MissingToken(
                    "the authorization scheme is not supported here",
                    details={"check": "scheme", "offered": " ".join(self.schemes)},
                )
            raw_token = match.group(2)
            token = self.verifier.verify(raw_token, now=moment)
            request: _Request | None = None  # made by the first check that runs
            for _binding, _member, claimed_of, check, needs, mismatch in _BINDING_CHECKS:
                claimed = claimed_of(token)
                if mismatch is not None and (scheme == needs) is (claimed is None):
                    raise mismatch(token)
                if claimed is not None:
                    if request is None:
                        request = _Request(
                            method,
                            url,
                            raw_token,
                            dpop_values,
                            client_cert,
                            client_cert_thumbprint,
                            moment,
                        )
                    check(self, token, claimed, request)
            required = frozenset(required_scopes) if required_scopes else frozenset()
            if required and not token.scopes.issuperset(required):
                raise InsufficientScope(
                    "the access token lacks a required scope",
                    details={
                        "check": "scope",
                        "required": sorted(required),
                        "missing": sorted(required - token.scopes),
                        "rfc": "RFC 6750 §3.1",
                    },
                )
        except TokenError as err:
            raise self._contextualise(err, scheme, moment) from None
        grant = _new(Grant)
        _set = _GRANT_SLOTS
        _set[0](grant, token)
        _set[1](grant, token.binding)
        _set[2](grant, token.subject)
        _set[3](grant, token.client_id)
        _set[4](grant, token.scopes)
        _set[7](grant, token.claims)
        if request is None:  # no binding to check: a bearer token
            _set[5](grant, None)
            _set[6](grant, None)
            _set[8](grant, {})
        else:
            _set[5](grant, request.proof)
            _set[6](grant, request.cert_thumbprint)
            _set[8](grant, request.response_headers)
        return grant, moment


class _Request:
    """What one request presents for the binding checks, and what they found."""

    __slots__ = (
        "cert_thumbprint",
        "client_cert",
        "client_cert_thumbprint",
        "dpop_values",
        "method",
        "now",
        "proof",
        "raw_token",
        "response_headers",
        "url",
    )

    def __init__(
        self,
        method: str,
        url: str,
        raw_token: str,
        dpop_values: list[str],
        client_cert: CertificateInput | None,
        client_cert_thumbprint: str | None,
        now: float,
    ) -> None:
        self.method = method
        self.url = url
        self.raw_token = raw_token
        self.dpop_values = dpop_values
        self.client_cert = client_cert
        self.client_cert_thumbprint = client_cert_thumbprint
        self.now = now
        self.proof: DPoPProof | None = None
        self.cert_thumbprint: str | None = None
        self.response_headers: dict[str, str] = {}


def _check_dpop(server: ResourceServer, token: AccessToken, jkt: str, request: _Request) -> None:
    """RFC 9449 §7.1: a proof is present, valid for this request and token, and made
    with the key ``cnf.jkt`` names; a rotated server nonce goes into the response."""
    if not request.dpop_values:
        raise InvalidDPoPProof(
            "the DPoP scheme requires a DPoP proof header",
            details={"check": "dpop_header", "count": 0, "rfc": "RFC 9449 §7.1"},
        )
    try:
        htu = server.htu_for(request.url)
    except ValueError as exc:
        raise InvalidRequest(
            f"the request URL is not usable: {exc}", details={"check": "htu"}
        ) from None
    try:
        proof = check_proof(
            request.dpop_values[0],
            htm=request.method,
            htu=htu,
            access_token=request.raw_token,
            nonce=server.nonce_manager if server.require_nonce else None,
            now=request.now,
            policy=server.policy,
            expected_jkt=jkt,
        )
    except InvalidDPoPProof as err:
        if err.check != "jkt":
            raise
        raise InvalidToken(
            "Invalid DPoP key binding",
            details={
                "check": "cnf.jkt",
                "claimed": jkt,
                "computed": err.details.get("presented"),
                "rfc": "RFC 9449 §6, §7.1",
            },
        ) from None
    request.proof = proof
    if server.require_nonce and server.nonce_manager is not None:
        request.response_headers = server.nonce_manager.response_headers(
            proof.nonce, now=request.now
        )


def _dpop_scheme_mismatch(token: AccessToken) -> TokenError:
    """The ``DPoP`` scheme with a token lacking ``cnf.jkt`` (RFC 9449 §7.1), or a
    DPoP-bound token sent with another scheme (the §7.2 downgrade)."""
    if token.jkt is None:
        return InvalidToken(
            "the access token is not DPoP-bound (no cnf.jkt)",
            details={"check": "cnf.jkt", "claimed": None, "rfc": "RFC 9449 §6, §7.1"},
        )
    return InvalidToken(
        "a DPoP-bound access token must be sent with the DPoP scheme",
        details={"check": "downgrade", "cnf.jkt": token.jkt, "rfc": "RFC 9449 §7.2"},
    )


def _check_certificate(
    server: ResourceServer, token: AccessToken, x5t_s256: str, request: _Request
) -> None:
    """RFC 8705 §3: the request's client certificate (or the hash a trusted proxy
    forwarded) is the one ``cnf.x5t#S256`` names, compared in constant time."""
    if request.client_cert_thumbprint is not None:
        request.cert_thumbprint = verify_thumbprint_binding(token, request.client_cert_thumbprint)
    else:
        request.cert_thumbprint = verify_certificate_binding(token, request.client_cert)


class _BindingCheck(NamedTuple):
    """How a resource server enforces one proof-of-possession method.

    ``member`` is the ``cnf`` member naming the key or certificate (``claimed`` reads
    it, parsed, from the :class:`~tokenlib.claims.AccessToken`); when the token has it,
    ``check`` runs and records its evidence on the request. ``scheme``, when set, is
    the authorization scheme that must carry this method: presenting that scheme
    without the member, or the member without that scheme, is ``mismatch(token)``.
    (A tuple, so the per-request loop unpacks it instead of reading attributes.)
    """

    binding: Binding
    member: str
    claimed: Callable[[AccessToken], str | None]
    check: Callable[[ResourceServer, AccessToken, str, _Request], None]
    scheme: str | None = None
    mismatch: Callable[[AccessToken], TokenError] | None = None


#: Every binding check, in the order they run (a DPoP scheme/cnf mismatch is reported
#: before any certificate problem); a token with both ``cnf`` members must pass both.
_BINDING_CHECKS: Final[tuple[_BindingCheck, ...]] = (
    _BindingCheck(
        Binding.DPOP,
        "jkt",
        attrgetter("jkt"),
        _check_dpop,
        scheme="DPoP",
        mismatch=_dpop_scheme_mismatch,
    ),
    _BindingCheck(Binding.MTLS, "x5t#S256", attrgetter("x5t_s256"), _check_certificate),
)
if {(e.member, e.binding) for e in _BINDING_CHECKS} != {
    (member, binding) for member, (binding, _) in CNF_MEMBERS.items()
}:  # pragma: no cover - a new cnf method needs its check here
    raise RuntimeError("tokenlib.server: a cnf member in CNF_MEMBERS has no binding check")


def _quoted(value: str) -> str:
    return re.sub(r"[^\x20\x21\x23-\x5b\x5d-\x7e]", "?", value)[:200]


def _scheme_of(value: str, offered: Sequence[str]) -> str:
    name = _SCHEMES.get(value.split(" ", 1)[0].lower())
    return name if name in offered and name is not None else offered[0]
