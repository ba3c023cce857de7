"""What every DPoP / mTLS HTTP client of tokenlib shares, whatever its HTTP library.

:mod:`tokenlib.integrations.httpx` and :mod:`tokenlib.integrations.requests` differ only
in how they hook into their library; the protocol logic lives here once:

* :class:`NonceStore` — the latest ``DPoP-Nonce`` per origin, bounded LRU (RFC 9449
  §8.2: use the most recent nonce the server gave).
* :func:`origin` / :func:`htu` — the nonce-memory key and the proof's ``htu`` (the URL
  without query and fragment, RFC 9449 §4.2).
* :class:`ProofSigner` — the ``DPoP`` (and ``Authorization: DPoP``) header values for one
  request: a fresh proof each time, ``ath`` when it holds an access token (§7.1).
* :func:`demands_nonce` — does a response ask for a nonce: ``400 {"error":
  "use_dpop_nonce"}`` from an authorization server (§8) or ``401 WWW-Authenticate: DPoP
  error="use_dpop_nonce"`` from a resource server (§9)?

Nothing here logs or reprs tokens, proofs or keys.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from tokenlib.dpop import create_proof
from tokenlib.jwk import PrivateKey, default_alg_for_key

__all__ = [
    "MAX_ERROR_BODY",
    "NonceStore",
    "ProofSigner",
    "body_needed",
    "demands_nonce",
    "htu",
    "origin",
    "origin_of",
    "retry_needed",
]

Clock = Callable[[], float]

_USE_DPOP_NONCE: Final = re.compile(r'error\s*=\s*"?use_dpop_nonce"?')
_DPOP_SCHEME: Final = re.compile(r"(?:^|,)\s*dpop(?:\s|,|$)", re.I)
#: How much of an error body is read to look for ``use_dpop_nonce``.
MAX_ERROR_BODY: Final = 16_384
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class NonceStore:
    """The latest ``DPoP-Nonce`` per origin (scheme://host:port), bounded LRU.

    RFC 9449 §8.2: a client uses the most recent nonce a server gave it. Bounded so a
    client talking to many hosts cannot grow without limit. Thread-safe; one store can
    be shared by several auth objects (and by the httpx and requests clients).
    """

    def __init__(self, max_origins: int = 256) -> None:
        if max_origins < 1:
            raise ValueError("max_origins must be >= 1")
        self.max_origins = max_origins
        self._lock = threading.Lock()
        self._data: OrderedDict[str, str] = OrderedDict()

    def get(self, origin: str) -> str | None:
        with self._lock:
            value = self._data.get(origin)
            if value is not None:
                self._data.move_to_end(origin)
            return value

    def put(self, origin: str, nonce: str) -> None:
        with self._lock:
            self._data[origin] = nonce
            self._data.move_to_end(origin)
            while len(self._data) > self.max_origins:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __repr__(self) -> str:
        return f"NonceStore(origins={len(self)}, max_origins={self.max_origins})"


def origin(scheme: str, host: str, port: int | None) -> str:
    """``scheme://host:port`` with the default port filled in (the nonce-memory key)."""
    scheme = scheme.lower()
    return f"{scheme}://{host.lower()}:{port or _DEFAULT_PORTS.get(scheme, 0)}"


def origin_of(url: str) -> str:
    """:func:`origin` of an absolute URL string."""
    parts = urlsplit(url)
    return origin(parts.scheme, parts.hostname or "", parts.port)


def htu(url: str) -> str:
    """The proof's ``htu``: the request URL without query and fragment (RFC 9449 §4.2)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


class ProofSigner:
    """Signs the DPoP headers of one request with ``key`` (RFC 9449 §4.2, §7.1).

    ``access_token`` → also ``Authorization: DPoP <token>`` and ``ath`` in the proof.
    ``clock`` (epoch seconds) exists for tests.
    """

    __slots__ = ("_access_token", "_clock", "_key", "alg")

    def __init__(
        self,
        key: PrivateKey,
        *,
        access_token: str | None = None,
        alg: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._key = key
        self.alg = alg or default_alg_for_key(key)
        self._access_token = access_token
        self._clock = clock or time.time

    def __repr__(self) -> str:
        return f"ProofSigner(alg={self.alg!r}, token={'set' if self._access_token else 'none'})"

    @property
    def key(self) -> PrivateKey:
        return self._key

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def access_token(self) -> str | None:
        return self._access_token

    def with_token(self, access_token: str) -> ProofSigner:
        return ProofSigner(self._key, access_token=access_token, alg=self.alg, clock=self._clock)

    def headers(self, method: str, url: str, nonce: str | None) -> dict[str, str]:
        """``{"DPoP": <fresh proof>}`` (+ ``Authorization``) for ``method`` ``url``."""
        out = {
            "DPoP": create_proof(
                self._key,
                method,
                htu(url),
                access_token=self._access_token,
                nonce=nonce,
                now=self._clock(),
                alg=self.alg,
            )
        }
        if self._access_token is not None:
            out["Authorization"] = f"DPoP {self._access_token}"
        return out


def body_needed(status: int, has_nonce_header: bool) -> bool:
    """Only a ``400`` carrying ``DPoP-Nonce`` needs its body read (RFC 9449 §8)."""
    return status == 400 and has_nonce_header


def demands_nonce(status: int, www_authenticate: Iterable[str], body: bytes | None) -> bool:
    """Does this response demand a DPoP nonce (RFC 9449 §8 at the AS, §9 at the RS)?"""
    if status == 401:
        return any(
            _DPOP_SCHEME.search(value) is not None and _USE_DPOP_NONCE.search(value) is not None
            for value in www_authenticate
        )
    if status == 400 and body is not None:
        try:
            parsed = json.loads(body[:MAX_ERROR_BODY])
        except ValueError:
            return False
        return isinstance(parsed, dict) and parsed.get("error") == "use_dpop_nonce"
    return False


def retry_needed(
    status: int,
    www_authenticate: Iterable[str],
    body: bytes | None,
    fresh: str | None,
    used: str | None,
) -> bool:
    """True if the response demands a nonce and offers one other than ``used`` — the
    one case where a single retry (with a new proof) can help."""
    return bool(fresh) and fresh != used and demands_nonce(status, www_authenticate, body)
