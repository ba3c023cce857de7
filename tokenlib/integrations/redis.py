"""Shared DPoP replay state in Redis: one ``jti`` accepted once across every RS instance.

RFC 9449 §11.1 asks a server to reject a proof whose ``jti`` it has already seen within
the acceptance window. A per-process memory cache only sees its own requests, so a proof
captured in flight can be replayed against a second instance behind the same load
balancer. :class:`RedisReplayCache` implements the :class:`tokenlib.replay.ReplayCache`
protocol with one atomic ``SET key 1 NX PX ttl`` per proof, so two instances racing on the
same ``jti`` cannot both win (no find-then-save window).

* The TTL covers ``expires_at - now``; the caller already folds the whole acceptance
  window including clock skew into ``expires_at`` (a shorter TTL re-opens the replay
  window, cf. keycloak#43505).
* Keys are namespaced with a configurable prefix; keys longer than 64 characters are
  hashed again (SHA-256) so a hostile ``jti`` cannot bloat Redis.
* Fail closed: a connection error, timeout or any Redis error raises
  :class:`~tokenlib.errors.ReplayStateUnavailable` (HTTP 503) instead of accepting the
  proof without replay protection. Nothing is cached about the failure: the next call
  opens a fresh pooled connection, so service resumes by itself when Redis returns.

This module needs the ``lab`` extra (``redis``) and is never imported by the core.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any, Final

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tokenlib.errors import ReplayStateUnavailable

__all__ = ["DEFAULT_PREFIX", "RedisReplayCache"]

DEFAULT_PREFIX: Final = "tokenlib:dpop-jti:"
_MAX_KEY_LENGTH: Final = 64
_log = logging.getLogger(__name__)


class RedisReplayCache:
    """A :class:`tokenlib.replay.ReplayCache` backed by Redis (atomic ``SET NX PX``).

    Build it with :meth:`from_url` (which creates a bounded connection pool with short
    socket timeouts) or pass an existing ``redis.Redis`` client. Thread-safe: redis-py
    pools hand one connection to each concurrent caller.
    """

    def __init__(self, client: redis.Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ValueError("prefix must be a non-empty string, e.g. 'myapi:dpop-jti:'")
        self._client = client
        self.prefix = prefix

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 0.5,
        socket_connect_timeout: float = 0.5,
        max_connections: int = 64,
        retries: int = 1,
    ) -> RedisReplayCache:
        """Connect lazily to ``url`` (``redis://``, ``rediss://`` or ``unix://``).

        ``retries`` re-sends a command once on a connection error, which is what lets a
        pooled connection that died with a Redis restart recover on the next request.
        Timeouts are short on purpose: a request waiting on replay state holds a worker.
        """
        if socket_timeout <= 0 or socket_connect_timeout <= 0:
            raise ValueError("socket timeouts must be positive seconds")
        if max_connections < 1 or retries < 0:
            raise ValueError("max_connections must be >= 1 and retries >= 0")
        retry = Retry(NoBackoff(), retries)
        pool: redis.ConnectionPool = redis.ConnectionPool.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            max_connections=max_connections,
            retry=retry,
            health_check_interval=0,
        )
        return cls(redis.Redis(connection_pool=pool, retry=retry), prefix=prefix)

    def redis_key(self, key: str) -> str:
        """The namespaced Redis key for a replay-cache ``key`` (hashed if long)."""
        if not isinstance(key, str) or not key:
            raise ValueError("replay cache key must be a non-empty string")
        if len(key) > _MAX_KEY_LENGTH:
            key = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self.prefix + key

    def check_and_store(
        self, key: str, *, expires_at: float, now: float, owner: str | None = None
    ) -> bool:
        """Record ``key`` until ``expires_at``; True if it was new, False on a replay.

        Raises :class:`~tokenlib.errors.ReplayStateUnavailable` when Redis cannot answer.
        """
        if not (math.isfinite(expires_at) and math.isfinite(now)):
            raise ValueError("expires_at and now must be finite epoch seconds")
        ttl_ms = max(1, math.ceil((expires_at - now) * 1000.0))
        name = self.redis_key(key)
        try:
            stored: Any = self._client.set(name, b"1", nx=True, px=ttl_ms)
        except redis.RedisError as exc:
            raise self._unavailable(exc) from None
        return bool(stored)

    def ping(self) -> bool:
        """True if Redis answers now (for readiness probes); never raises."""
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        """Release the pool's connections."""
        self._client.close()
        self._client.connection_pool.disconnect()

    def __enter__(self) -> RedisReplayCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisReplayCache(prefix={self.prefix!r}, server={self._server()!r})"

    def _server(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        if "path" in kwargs:
            return f"unix:{kwargs['path']}"
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    def _unavailable(self, exc: redis.RedisError) -> ReplayStateUnavailable:
        # Only the error type and the server address: a redis URL may hold a password.
        kind = type(exc).__name__
        _log.warning(
            "DPoP replay state unavailable (%s at %s); refusing request", kind, self._server()
        )
        return ReplayStateUnavailable(
            "DPoP replay state is unavailable; the request is refused rather than "
            "accepted without replay protection",
            details={
                "check": "replay_state",
                "backend": "redis",
                "server": self._server(),
                "error": kind,
                "rfc": "RFC 9449 §11.1",
            },
        )
