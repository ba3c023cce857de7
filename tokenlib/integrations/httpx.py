"""Client side of sender-constrained tokens for ``httpx`` (sync and async).

* :class:`DPoPAuth` — an ``httpx.Auth`` that signs a fresh DPoP proof for every request
  (RFC 9449 §4), adds ``ath`` and ``Authorization: DPoP`` when it holds an access token
  (§7.1), remembers the latest ``DPoP-Nonce`` per origin (bounded LRU) and retries
  exactly once when the server demands a nonce: ``400 {"error": "use_dpop_nonce"}``
  from an authorization server (§8) or ``401 WWW-Authenticate: DPoP
  error="use_dpop_nonce"`` from a resource server (§9). A proof is never re-sent: the
  retry carries a new ``jti`` and the new nonce.
* :func:`client_ssl_context`, :func:`mtls_client`, :func:`async_mtls_client` — a client
  certificate on the TLS connection for RFC 8705 (mutual-TLS client authentication and
  certificate-bound tokens); :class:`BearerAuth` sends such a token (scheme ``Bearer``).
* :class:`TokenClient` / :class:`AsyncTokenClient` / :func:`fetch_token` — the
  client-credentials grant (RFC 6749 §4.4) and the refresh-token grant (§6) with
  ``private_key_jwt`` client authentication (RFC 7523 §2.2, assertion per §3), with
  DPoP (RFC 9449 §5) or mTLS binding.

Needs the ``lab`` extra (``httpx``). Nothing here logs or reprs tokens, proofs or keys.
"""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from tokenlib import _jws
from tokenlib.integrations._client import (
    NonceStore,
    ProofSigner,
    body_needed,
    demands_nonce,
    origin,
)
from tokenlib.jwk import PrivateKey, default_alg_for_key

__all__ = [
    "AsyncTokenClient",
    "BearerAuth",
    "DPoPAuth",
    "NonceStore",
    "TokenClient",
    "TokenRequestError",
    "TokenResponse",
    "async_mtls_client",
    "client_assertion",
    "client_ssl_context",
    "fetch_token",
    "mtls_client",
]

CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

Clock = Callable[[], float]


def _origin(url: httpx.URL) -> str:
    return origin(url.scheme, url.host, url.port)


def _htu(url: httpx.URL) -> str:
    return str(url.copy_with(query=None, fragment=None))


# ---------------------------------------------------------------------------- DPoPAuth


class DPoPAuth(httpx.Auth):
    """Sign every request with a fresh DPoP proof (RFC 9449); retry once on a nonce demand.

    ``DPoPAuth(key)`` is for the token endpoint (proof only). ``DPoPAuth(key,
    access_token=token)`` — or ``auth.with_token(token)`` — also sends
    ``Authorization: DPoP <token>`` and binds the proof to it with ``ath``. ``clock``
    (epoch seconds) exists for tests. The retry re-sends the request body, so a
    non-replayable streaming body cannot be retried (httpx raises ``StreamConsumed``);
    ``retry_on_nonce=False`` leaves the retry to the caller (:class:`TokenClient` does,
    to send a fresh client assertion).
    """

    def __init__(
        self,
        key: PrivateKey,
        *,
        access_token: str | None = None,
        alg: str | None = None,
        nonces: NonceStore | None = None,
        clock: Clock | None = None,
        retry_on_nonce: bool = True,
    ) -> None:
        self._signer = ProofSigner(key, access_token=access_token, alg=alg, clock=clock)
        self.retry_on_nonce = retry_on_nonce
        self.alg = self._signer.alg
        self._access_token = access_token
        self.nonces = nonces if nonces is not None else NonceStore()
        self._clock = self._signer.clock

    def __repr__(self) -> str:
        return f"DPoPAuth(alg={self.alg!r}, token={'set' if self._access_token else 'none'})"

    @property
    def has_token(self) -> bool:
        return self._access_token is not None

    def with_token(self, access_token: str) -> DPoPAuth:
        """The same key, clock and nonce memory, sending ``access_token`` (RFC 9449 §7.1)."""
        return DPoPAuth(
            self._signer.key,
            access_token=access_token,
            alg=self.alg,
            nonces=self.nonces,
            clock=self._clock,
        )

    def _sign(self, request: httpx.Request, nonce: str | None) -> None:
        request.headers.update(self._signer.headers(request.method, _htu(request.url), nonce))

    def _remember(self, origin: str, response: httpx.Response) -> str | None:
        nonce = response.headers.get("DPoP-Nonce")
        if nonce:
            self.nonces.put(origin, nonce)
        return nonce or None

    def nonce_retry_needed(self, response: httpx.Response, used: str | None) -> bool:
        """True if ``response`` demands a DPoP nonce (RFC 9449 §8/§9) and offers one
        other than ``used`` — the one case where a single retry can help."""
        fresh = response.headers.get("DPoP-Nonce")
        return bool(fresh) and fresh != used and self._demands_nonce(response)

    def nonce_for(self, url: httpx.URL | str) -> str | None:
        """The nonce that the next proof to ``url``'s origin will carry."""
        return self.nonces.get(_origin(httpx.URL(url)))

    @staticmethod
    def _body_needed(response: httpx.Response) -> bool:
        return body_needed(response.status_code, "DPoP-Nonce" in response.headers)

    @staticmethod
    def _demands_nonce(response: httpx.Response) -> bool:
        try:
            body = response.content if response.status_code == 400 else None
        except httpx.ResponseNotRead:
            body = None
        return demands_nonce(
            response.status_code, response.headers.get_list("WWW-Authenticate"), body
        )

    def _flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        origin = _origin(request.url)
        used = self.nonces.get(origin)
        self._sign(request, used)
        response = yield request
        fresh = self._remember(origin, response)
        if self.retry_on_nonce and self.nonce_retry_needed(response, used):
            self._sign(request, fresh)  # a new proof: new jti, iat and the new nonce
            response = yield request
            self._remember(origin, response)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("DPoPAuth is driven through sync_auth_flow/async_auth_flow")

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        flow = self._flow(request)
        request = next(flow)
        while True:
            response = yield request
            if self._body_needed(response):
                response.read()
            try:
                request = flow.send(response)
            except StopIteration:
                break

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self._flow(request)
        request = next(flow)
        while True:
            response = yield request
            if self._body_needed(response):
                await response.aread()
            try:
                request = flow.send(response)
            except StopIteration:
                break


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` — for certificate-bound tokens (RFC 8705 §3),
    whose proof of possession is the client certificate on the TLS connection."""

    def __init__(self, access_token: str) -> None:
        self._access_token = access_token

    def __repr__(self) -> str:
        return "BearerAuth(token=set)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._access_token}"
        yield request


# -------------------------------------------------------------------------------- mTLS


def client_ssl_context(
    cert_file: str | Path,
    key_file: str | Path | None = None,
    *,
    ca_file: str | Path | None = None,
    password: bytes | None = None,
) -> ssl.SSLContext:
    """A TLS client context presenting ``cert_file``/``key_file`` (PEM) to the server.

    Server verification stays on: ``ca_file`` adds a private CA (the lab's); without it
    the system trust store is used. TLS 1.2 is the minimum.
    """
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file) if key_file is not None else None, password)
    return ctx


def mtls_client(
    cert_file: str | Path,
    key_file: str | Path | None = None,
    *,
    ca_file: str | Path | None = None,
    password: bytes | None = None,
    **kwargs: Any,
) -> httpx.Client:
    """An ``httpx.Client`` whose TLS connections carry the client certificate (RFC 8705)."""
    ctx = client_ssl_context(cert_file, key_file, ca_file=ca_file, password=password)
    return httpx.Client(verify=ctx, **kwargs)


def async_mtls_client(
    cert_file: str | Path,
    key_file: str | Path | None = None,
    *,
    ca_file: str | Path | None = None,
    password: bytes | None = None,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` counterpart of :func:`mtls_client`."""
    ctx = client_ssl_context(cert_file, key_file, ca_file=ca_file, password=password)
    return httpx.AsyncClient(verify=ctx, **kwargs)


# ------------------------------------------------------------------------ token client


def client_assertion(
    key: PrivateKey,
    *,
    client_id: str,
    token_endpoint: str,
    alg: str | None = None,
    kid: str | None = None,
    lifetime: int = 60,
    now: float | None = None,
) -> str:
    """A ``private_key_jwt`` client assertion (RFC 7523 §2.2, claims per §3).

    ``iss`` = ``sub`` = ``client_id``; ``aud`` = the token endpoint URL; a random
    ``jti`` (the AS may refuse a reuse); a short ``exp`` (default 60 s).
    """
    issued = int(time.time() if now is None else now)
    header: dict[str, Any] = {"alg": alg or default_alg_for_key(key), "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "jti": secrets.token_urlsafe(16),
        "iat": issued,
        "exp": issued + lifetime,
    }
    return _jws.sign(header, claims, key)


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A successful token response (RFC 6749 §5.1). Tokens are kept out of ``repr``."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int | None
    scope: frozenset[str] | None
    refresh_token: str | None = field(default=None, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_dpop(self) -> bool:
        return self.token_type.lower() == "dpop"


class TokenRequestError(Exception):
    """The authorization server refused the token request (RFC 6749 §5.2), or its
    answer was unusable (no ``access_token``, an unexpected ``token_type``)."""

    def __init__(self, error: str, description: str | None, *, status_code: int) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.status_code = status_code


def _parse_token_response(response: httpx.Response, *, expect_dpop: bool) -> TokenResponse:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise TokenRequestError(
            "invalid_response",
            "token endpoint did not answer with a JSON object",
            status_code=response.status_code,
        )
    if response.status_code != 200:
        error = body.get("error")
        description = body.get("error_description")
        raise TokenRequestError(
            error if isinstance(error, str) else "invalid_response",
            description if isinstance(description, str) else None,
            status_code=response.status_code,
        )
    token = body.get("access_token")
    token_type = body.get("token_type")
    if not isinstance(token, str) or not token or not isinstance(token_type, str):
        raise TokenRequestError(
            "invalid_response", "no access_token/token_type", status_code=response.status_code
        )
    if expect_dpop and token_type.lower() != "dpop":
        # RFC 9449 §5: a client that sent a proof and got another type must not assume binding.
        raise TokenRequestError(
            "invalid_response",
            f"asked for a DPoP-bound token but got token_type {token_type!r}",
            status_code=response.status_code,
        )
    expires_in = body.get("expires_in")
    scope = body.get("scope")
    refresh = body.get("refresh_token")
    extra = {
        k: v
        for k, v in body.items()
        if k not in {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    }
    return TokenResponse(
        access_token=token,
        token_type=token_type,
        expires_in=expires_in
        if isinstance(expires_in, int) and not isinstance(expires_in, bool)
        else None,
        scope=frozenset(scope.split()) if isinstance(scope, str) else None,
        refresh_token=refresh if isinstance(refresh, str) else None,
        extra=extra,
    )


class _TokenClientBase:
    def __init__(
        self,
        token_endpoint: str,
        *,
        client_id: str,
        client_key: PrivateKey | None = None,
        client_key_alg: str | None = None,
        client_kid: str | None = None,
        dpop_key: PrivateKey | None = None,
        dpop_alg: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not token_endpoint.startswith(("https://", "http://")):
            raise ValueError("token_endpoint must be an absolute http(s) URL")
        self.token_endpoint = token_endpoint
        self.client_id = client_id
        self._client_key = client_key
        self._client_key_alg = client_key_alg
        self._client_kid = client_kid
        self._clock = clock or time.time
        self.dpop: DPoPAuth | None = (
            DPoPAuth(dpop_key, alg=dpop_alg, clock=self._clock, retry_on_nonce=False)
            if dpop_key is not None
            else None
        )

    def __repr__(self) -> str:
        auth = "private_key_jwt" if self._client_key is not None else "tls_client_auth/none"
        return (
            f"{type(self).__name__}(token_endpoint={self.token_endpoint!r}, "
            f"client_id={self.client_id!r}, auth={auth}, dpop={self.dpop is not None})"
        )

    def _form(
        self, grant: dict[str, str], scope: str | None, resource: str | None
    ) -> dict[str, str]:
        form = dict(grant)
        form["client_id"] = self.client_id
        if scope:
            form["scope"] = scope
        if resource:
            form["resource"] = resource
        if self._client_key is not None:
            form["client_assertion_type"] = CLIENT_ASSERTION_TYPE
            form["client_assertion"] = client_assertion(
                self._client_key,
                client_id=self.client_id,
                token_endpoint=self.token_endpoint,
                alg=self._client_key_alg,
                kid=self._client_kid,
                now=self._clock(),
            )
        return form

    def _retry(self, response: httpx.Response, used: str | None) -> bool:
        """One retry when the AS demands a DPoP nonce (RFC 9449 §8). The retry carries a
        new proof *and* a new client assertion: an AS may refuse a reused ``jti``
        (RFC 7523 §3)."""
        return self.dpop is not None and self.dpop.nonce_retry_needed(response, used)

    def auth_for(self, token: TokenResponse) -> httpx.Auth:
        """The ``httpx.Auth`` that presents ``token`` at a resource server: DPoP (sharing
        this client's key and nonce memory) or Bearer for a certificate-bound token."""
        if token.is_dpop:
            if self.dpop is None:
                raise ValueError("a DPoP token needs the DPoP key this client was built with")
            return self.dpop.with_token(token.access_token)
        return BearerAuth(token.access_token)


class TokenClient(_TokenClientBase):
    """Get tokens from a token endpoint with ``httpx.Client`` (pass an :func:`mtls_client`
    for ``tls_client_auth`` and certificate-bound tokens).

    Client authentication: ``client_key`` → ``private_key_jwt`` (RFC 7523); without it
    only ``client_id`` is sent, which is ``tls_client_auth`` on an mTLS connection
    (RFC 8705 §2) or a public client. ``dpop_key`` → every token request carries a DPoP
    proof and the response must be ``token_type: DPoP`` (RFC 9449 §5).
    """

    def __init__(
        self, token_endpoint: str, *, http: httpx.Client | None = None, **kwargs: Any
    ) -> None:
        super().__init__(token_endpoint, **kwargs)
        self._own_http = http is None
        self.http = http if http is not None else httpx.Client()

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def __enter__(self) -> TokenClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _post(
        self, grant: dict[str, str], scope: str | None, resource: str | None
    ) -> TokenResponse:
        for attempt in (1, 2):
            used = self.dpop.nonce_for(self.token_endpoint) if self.dpop is not None else None
            response = self.http.post(
                self.token_endpoint,
                data=self._form(grant, scope, resource),  # a fresh client assertion each time
                auth=self.dpop or httpx.USE_CLIENT_DEFAULT,
                headers={"Accept": "application/json"},
            )
            if attempt == 1 and self._retry(response, used):
                continue
            break
        return _parse_token_response(response, expect_dpop=self.dpop is not None)

    def client_credentials(
        self, *, scope: str | None = None, resource: str | None = None
    ) -> TokenResponse:
        """The client-credentials grant (RFC 6749 §4.4)."""
        return self._post({"grant_type": "client_credentials"}, scope, resource)

    def refresh(self, refresh_token: str, *, scope: str | None = None) -> TokenResponse:
        """The refresh-token grant (RFC 6749 §6); a DPoP-bound refresh token needs a proof
        with the same key (RFC 9449 §5), which this client adds when it has ``dpop_key``."""
        return self._post(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}, scope, None
        )


class AsyncTokenClient(_TokenClientBase):
    """The ``httpx.AsyncClient`` counterpart of :class:`TokenClient`."""

    def __init__(
        self, token_endpoint: str, *, http: httpx.AsyncClient | None = None, **kwargs: Any
    ) -> None:
        super().__init__(token_endpoint, **kwargs)
        self._own_http = http is None
        self.http = http if http is not None else httpx.AsyncClient()

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncTokenClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _post(
        self, grant: dict[str, str], scope: str | None, resource: str | None
    ) -> TokenResponse:
        for attempt in (1, 2):
            used = self.dpop.nonce_for(self.token_endpoint) if self.dpop is not None else None
            response = await self.http.post(
                self.token_endpoint,
                data=self._form(grant, scope, resource),  # a fresh client assertion each time
                auth=self.dpop or httpx.USE_CLIENT_DEFAULT,
                headers={"Accept": "application/json"},
            )
            if attempt == 1 and self._retry(response, used):
                continue
            break
        return _parse_token_response(response, expect_dpop=self.dpop is not None)

    async def client_credentials(
        self, *, scope: str | None = None, resource: str | None = None
    ) -> TokenResponse:
        """The client-credentials grant (RFC 6749 §4.4)."""
        return await self._post({"grant_type": "client_credentials"}, scope, resource)

    async def refresh(self, refresh_token: str, *, scope: str | None = None) -> TokenResponse:
        """The refresh-token grant (RFC 6749 §6) with the same DPoP key (RFC 9449 §5)."""
        return await self._post(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}, scope, None
        )


def fetch_token(
    token_endpoint: str,
    *,
    client_id: str,
    client_key: PrivateKey | None = None,
    dpop_key: PrivateKey | None = None,
    scope: str | None = None,
    http: httpx.Client | None = None,
    **kwargs: Any,
) -> TokenResponse:
    """One client-credentials token request (see :class:`TokenClient` for the options)."""
    with TokenClient(
        token_endpoint,
        client_id=client_id,
        client_key=client_key,
        dpop_key=dpop_key,
        http=http,
        **kwargs,
    ) as client:
        return client.client_credentials(scope=scope)
