"""Client side of sender-constrained tokens for ``requests``.

The ``requests`` counterpart of :mod:`tokenlib.integrations.httpx`, with the same protocol
logic (:mod:`tokenlib.integrations._client`):

* :class:`DPoPAuth` — a ``requests.auth.AuthBase`` that signs a fresh DPoP proof for every
  request (RFC 9449 §4), adds ``ath`` and ``Authorization: DPoP`` when it holds an access
  token (§7.1), remembers the latest ``DPoP-Nonce`` per origin (bounded LRU, shareable
  with the httpx client) and retries exactly once when the server demands a nonce
  (``400 use_dpop_nonce`` from an AS, §8; ``401 WWW-Authenticate: DPoP
  error="use_dpop_nonce"`` from an RS, §9). A proof is never re-sent: the retry carries a
  new ``jti`` and the new nonce. A streaming body that cannot be rewound is not retried.
* :class:`BearerAuth` — ``Authorization: Bearer`` for certificate-bound tokens (RFC 8705
  §3), whose proof of possession is the client certificate on the TLS connection.
* :func:`mtls_session` — a ``requests.Session`` presenting a client certificate
  (RFC 8705 §2), server verification kept on.

Needs ``requests``. Nothing here logs or reprs tokens, proofs or keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.cookies import extract_cookies_to_jar

from tokenlib.integrations._client import (
    Clock,
    NonceStore,
    ProofSigner,
    body_needed,
    origin_of,
    retry_needed,
)
from tokenlib.jwk import PrivateKey

__all__ = ["BearerAuth", "DPoPAuth", "NonceStore", "mtls_session"]

_RETRIED = "_tokenlib_dpop_retried"
_USED = "_tokenlib_dpop_nonce"


class DPoPAuth(AuthBase):
    """Sign every request with a fresh DPoP proof (RFC 9449); retry once on a nonce demand.

    ``DPoPAuth(key)`` is for a token endpoint (proof only); ``DPoPAuth(key,
    access_token=token)`` — or ``auth.with_token(token)`` — also sends ``Authorization:
    DPoP <token>`` and binds the proof to it with ``ath``. ``nonces`` may be shared with
    :class:`tokenlib.integrations.httpx.DPoPAuth`. ``clock`` (epoch seconds) is for tests.
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
        self.alg = self._signer.alg
        self.nonces = nonces if nonces is not None else NonceStore()
        self.retry_on_nonce = retry_on_nonce

    def __repr__(self) -> str:
        token = "set" if self._signer.access_token else "none"
        return f"DPoPAuth(alg={self.alg!r}, token={token})"

    @property
    def has_token(self) -> bool:
        return self._signer.access_token is not None

    def with_token(self, access_token: str) -> DPoPAuth:
        """The same key, clock and nonce memory, sending ``access_token`` (RFC 9449 §7.1)."""
        return DPoPAuth(
            self._signer.key,
            access_token=access_token,
            alg=self.alg,
            nonces=self.nonces,
            clock=self._signer.clock,
            retry_on_nonce=self.retry_on_nonce,
        )

    def nonce_for(self, url: str) -> str | None:
        """The nonce that the next proof to ``url``'s origin will carry."""
        return self.nonces.get(origin_of(url))

    def _sign(self, request: requests.PreparedRequest, nonce: str | None) -> None:
        url = str(request.url)
        request.headers.update(self._signer.headers(str(request.method), url, nonce))
        setattr(request, _USED, nonce)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        self._sign(request, self.nonce_for(str(request.url)))
        request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        request = response.request
        origin = origin_of(str(request.url))
        fresh = response.headers.get("DPoP-Nonce") or None
        if fresh:
            self.nonces.put(origin, fresh)
        if not self.retry_on_nonce or getattr(request, _RETRIED, False):
            return response
        used = getattr(request, _USED, None)
        status = response.status_code
        body = response.content if body_needed(status, fresh is not None) else None
        challenges = _header_list(response, "WWW-Authenticate")
        if not retry_needed(status, challenges, body, fresh, used):
            return response
        retry = request.copy()
        if not _rewind(retry):
            return response  # a consumed stream cannot be sent twice
        response.content  # noqa: B018  (read it so the connection can be reused)
        response.close()
        # Cookies the refusal set go with the retry, as requests' own digest auth does.
        jar = retry._cookies
        if jar is not None:
            extract_cookies_to_jar(jar, request, response.raw)
            retry.prepare_cookies(jar)
        self._sign(retry, fresh)  # a new proof: new jti, iat and the new nonce
        setattr(retry, _RETRIED, True)
        connection = response.connection
        second: requests.Response = connection.send(retry, **kwargs)
        second.history.append(response)
        second.request = retry
        fresh_again = second.headers.get("DPoP-Nonce")
        if fresh_again:
            self.nonces.put(origin, fresh_again)
        return second


def _header_list(response: requests.Response, name: str) -> list[str]:
    """Every field line of ``name`` (urllib3 keeps them; requests joins them with ', ')."""
    raw = getattr(response, "raw", None)
    headers = getattr(raw, "headers", None)
    getlist = getattr(headers, "getlist", None)
    if callable(getlist):
        values = getlist(name)
        if values:
            return [str(v) for v in values]
    value = response.headers.get(name)
    return [value] if value else []


def _rewind(request: requests.PreparedRequest) -> bool:
    body = request.body
    if body is None or isinstance(body, bytes | str):
        return True
    seek = getattr(body, "seek", None)
    position = getattr(request, "_body_position", None)
    if callable(seek) and isinstance(position, int):
        seek(position)
        return True
    return False


class BearerAuth(AuthBase):
    """``Authorization: Bearer <token>`` — for certificate-bound tokens (RFC 8705 §3)."""

    def __init__(self, access_token: str) -> None:
        self._access_token = access_token

    def __repr__(self) -> str:
        return "BearerAuth(token=set)"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._access_token}"
        return request


class _PinnedTLSAdapter(HTTPAdapter):
    """Sends with *this* client certificate and CA, whatever the environment says.

    ``requests`` lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override ``Session.verify``
    and a per-request ``cert=`` replace the session's; for a certificate-bound token the
    certificate is the credential, so it is fixed here.
    """

    def __init__(self, verify: str | bool, cert: str | tuple[str, str]) -> None:
        super().__init__()
        self._verify = verify
        self._cert = cert

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        return super().send(
            request,
            stream=stream,
            timeout=timeout,
            verify=self._verify,
            cert=self._cert,
            proxies=dict(proxies) if proxies is not None else None,
        )


def mtls_session(
    cert_file: str | Path,
    key_file: str | Path | None = None,
    *,
    ca_file: str | Path | None = None,
    auth: AuthBase | None = None,
) -> requests.Session:
    """A ``requests.Session`` whose HTTPS connections carry the client certificate
    (RFC 8705 §2; PEM files, the key unencrypted — ``requests`` cannot take a password).
    Server verification stays on: ``ca_file`` names a private CA, else the default trust
    store; environment variables cannot swap either (see :class:`_PinnedTLSAdapter`)."""
    cert: str | tuple[str, str] = (
        (str(cert_file), str(key_file)) if key_file is not None else str(cert_file)
    )
    verify: str | bool = str(ca_file) if ca_file is not None else True
    session = requests.Session()
    session.cert = cert
    session.verify = verify
    session.mount("https://", _PinnedTLSAdapter(verify, cert))
    if auth is not None:
        session.auth = auth
    return session
