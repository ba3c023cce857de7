"""Shared DPoP replay state in Redis: one ``jti`` accepted once across every RS instance.

RFC 9449 §11.1 asks a server to reject a proof whose ``jti`` it has already seen within
the acceptance window. A per-process memory cache only sees its own requests, so a proof
captured in flight can be replayed against a second instance behind the same load
balancer. :class:`RedisReplayCache` (blocking) and :class:`AsyncRedisReplayCache`
(``redis.asyncio``, for ASGI servers) implement :class:`tokenlib.replay.ReplayCache` /
:class:`~tokenlib.replay.AsyncReplayCache` with **one** Lua script per proof, one round
trip, atomic on the server:

* **Replay check** — the entry ``P{bb}:j:<key>`` is set only if absent, with a TTL of
  ``expires_at - now`` (the caller folds the whole acceptance window into
  ``expires_at``; a shorter TTL re-opens the replay window, cf. keycloak#43505). Two
  instances racing on one ``jti`` cannot both win.
* **Per-owner quota** — the owner (``jkt`` at a resource server, ``client_id`` at a token
  endpoint) keeps a sorted set of its live entries' expiries, trimmed by time in the same
  script; at ``max_entries_per_owner`` its new proofs get
  :class:`~tokenlib.errors.ReplayQuotaExceeded` (429, ``Retry-After`` = seconds until its
  oldest entry expires). Other owners are untouched.
* **State-loss detection** — every bucket has a generation marker without expiry. If it
  is gone (restart without persistence, failover to a replica without the data,
  ``FLUSHALL``) or counts fewer writes than this process already saw (restore of an older
  snapshot, lagging replica), the loss time T is recorded and every proof whose
  acceptance window started before T is refused with
  :class:`~tokenlib.errors.ReplayStateUnavailable` (503, ``Retry-After`` = when a fresh
  proof will pass) — for at most one window. 503, not ``ReplayDetected``: the store
  cannot know the proof is a replay, and a client should retry with a new proof. An
  honest client's fresh proofs are held back for ``iat_future`` (60 s by default) after
  the loss. A Redis that never held replay state looks the same as one that lost it:
  call ``initialize()`` once on a brand-new Redis, or accept that first minute of 503.
* **Settings that keep the promise** — every new connection (start and each reconnect)
  reads ``maxmemory-policy`` (``CONFIG GET``, else ``INFO memory``); anything but
  ``noeviction`` (``allkeys-*`` may evict any key, ``volatile-*`` the replay entries,
  which carry a TTL) or an unreadable policy raises :class:`UnsafeRedisSettings` (503).
* **Fail closed, bounded** — a connection error, a timeout (``socket_timeout``, 0.5 s by
  default: a hung Redis costs a request at most that) or any Redis error raises
  :class:`~tokenlib.errors.ReplayStateUnavailable`. A command is re-sent only after a
  *connection* error (a pooled connection that died with a restart), never after a
  timeout: the script may have run, and a re-send would call a fresh proof a replay.
* **Cluster** — all keys of one owner share a hash tag with their bucket's marker, so
  the script never crosses slots; pass ``cluster=True`` to :meth:`from_url` or a
  ``redis.cluster.RedisCluster``. Valkey speaks the same protocol.

Key layout and memory are in :mod:`tokenlib.integrations._redis_scripts`. This module
needs ``redis`` (the ``lab`` extra) and is never imported by the core.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Final

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from tokenlib.dpop import DPoPPolicy
from tokenlib.errors import ReplayStateUnavailable, TokenError
from tokenlib.integrations._redis_scripts import (
    BUCKETS,
    CHECK_AND_STORE_LUA,
    SPREAD_LOSS_LUA,
    Call,
    Reply,
    SettingsProbe,
    UnsafeRedisSettings,
    acceptance_window_for,
    decode,
    marker_key,
    outcome,
)
from tokenlib.replay import DEFAULT_MAX_PER_OWNER

__all__ = [
    "DEFAULT_ACCEPTANCE_WINDOW",
    "DEFAULT_PREFIX",
    "AsyncRedisReplayCache",
    "RedisReplayCache",
    "UnsafeRedisSettings",
    "acceptance_window_for",
]

DEFAULT_PREFIX: Final = "tokenlib:dpop-jti:"
#: :func:`acceptance_window_for` the RFC 9449 default policy: 300 + 2 × 60 = 420 s.
DEFAULT_ACCEPTANCE_WINDOW: Final = acceptance_window_for(DPoPPolicy.rfc())
_log = logging.getLogger(__name__)
# redis-py's cluster clients raise RedisClusterException (not a RedisError) when no node
# can be reached, wrapping the cause.
_REDIS_ERRORS: Final = (redis.RedisError, redis.exceptions.RedisClusterException)


class _SettingsRefused(redis.RedisError):
    """Raised inside redis-py's connect so the connection is dropped, never pooled."""

    def __init__(self, error: UnsafeRedisSettings) -> None:
        super().__init__(error.description)
        self.error = error


def _server_of(kwargs: dict[str, Any]) -> str:
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


def _judge(policy: str | None, conn: Any) -> None:
    path = getattr(conn, "path", None)
    where = f"unix:{path}" if path else f"{getattr(conn, 'host', '?')}:{getattr(conn, 'port', '?')}"
    error = SettingsProbe.refusal(policy, server=where)
    if error is not None:
        _log.error("refusing Redis for DPoP replay state: %s", error.description)
        raise _SettingsRefused(error)


def _sync_probe(conn: Any) -> None:
    policy = None
    for step, command in enumerate(SettingsProbe.COMMANDS):
        try:
            conn.send_command(*command)
            reply: object = conn.read_response()
        except redis.ResponseError as exc:
            reply = exc
        policy = SettingsProbe.policy_from(step, reply)
        if policy is not None:
            break
    _judge(policy, conn)


async def _async_probe(conn: Any) -> None:
    policy = None
    for step, command in enumerate(SettingsProbe.COMMANDS):
        try:
            await conn.send_command(*command)
            reply: object = await conn.read_response()
        except redis.ResponseError as exc:
            reply = exc
        policy = SettingsProbe.policy_from(step, reply)
        if policy is not None:
            break
    _judge(policy, conn)


def _connect_checked(conn: Any) -> None:
    conn.on_connect()
    _sync_probe(conn)


async def _aconnect_checked(conn: Any) -> None:
    await conn.on_connect()
    await _async_probe(conn)


class _Base:
    """What the blocking and asyncio clients share: options, the call plan, the verdict."""

    _client: Any

    def __init__(
        self,
        *,
        prefix: str,
        max_entries_per_owner: int | None,
        acceptance_window: float,
        check_eviction_policy: bool,
    ) -> None:
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(
                "prefix must be a non-empty string without '{' or '}' (the Redis Cluster "
                "hash tag is added by the store), e.g. 'myapi:dpop-jti:'"
            )
        if max_entries_per_owner is not None and (
            isinstance(max_entries_per_owner, bool)
            or not isinstance(max_entries_per_owner, int)
            or max_entries_per_owner < 1
        ):
            raise ValueError("max_entries_per_owner must be None or a positive int")
        if (
            isinstance(acceptance_window, bool)
            or not isinstance(acceptance_window, (int, float))
            or not math.isfinite(acceptance_window)
            or acceptance_window <= 0
        ):
            raise ValueError(
                "acceptance_window must be positive seconds "
                "(acceptance_window_for(policy) computes it from a DPoPPolicy)"
            )
        self.prefix = prefix
        self.max_entries_per_owner = max_entries_per_owner
        self.acceptance_window = float(acceptance_window)
        self.check_eviction_policy = check_eviction_policy
        # bucket -> (generation, entry count) last seen: detects rollback to older state.
        self._seen: dict[str, tuple[str, int]] = {}

    def redis_key(self, key: str, *, owner: str | None = None) -> str:
        """The Redis key of a replay-cache ``key`` (hashed if long) for ``owner``."""
        return self._prepare(key, expires_at=0.0, now=0.0, owner=owner).keys[1]

    def _prepare(self, key: str, *, expires_at: float, now: float, owner: str | None) -> Call:
        return Call.build(
            prefix=self.prefix,
            key=key,
            expires_at=expires_at,
            now=now,
            owner=owner,
            window=self.acceptance_window,
            quota=self.max_entries_per_owner,
            seen=self._seen,
        )

    def _verdict(self, raw: object, call: Call) -> tuple[Reply, bool | BaseException]:
        """The decoded reply and the answer (True/False) or the error to raise."""
        reply = decode(raw)
        if reply.flag:
            why = "marker missing" if reply.flag == 1 else "fewer writes than already seen"
            _log.warning(
                "DPoP replay state lost in Redis bucket %s at %s (%s: restart without data, "
                "failover or flush); refusing proofs from before the loss for %.0f s",
                call.bucket,
                call.now,
                why,
                self.acceptance_window,
            )
        previous = self._seen.get(call.bucket)
        if previous is None or previous[0] != reply.generation or previous[1] < reply.count:
            self._seen[call.bucket] = (reply.generation, reply.count)
        try:
            return reply, outcome(
                reply, call, window=self.acceptance_window, details=self._details()
            )
        except TokenError as exc:  # quota (429) or quarantine after a loss (503)
            return reply, exc

    def _spread_commands(self, lost_at: str) -> list[tuple[str, str, str]]:
        return [(m, secrets.token_hex(8), lost_at) for m in self._markers()]

    def _spread_failed(self, exc: BaseException) -> None:
        _log.warning("could not mark every replay bucket as lost (%s)", type(exc).__name__)

    def _details(self) -> dict[str, object]:
        return {"backend": "redis", "server": self._server(), "rfc": "RFC 9449 §11.1"}

    def _server(self) -> str:
        client = self._client
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            return _server_of(pool.connection_kwargs)
        nodes = getattr(client, "startup_nodes", None) or getattr(
            getattr(client, "nodes_manager", None), "startup_nodes", None
        )
        if nodes:
            first = next(iter(nodes.values())) if isinstance(nodes, dict) else nodes[0]
            return f"cluster {first.host}:{first.port}"
        return "?"

    def _unavailable(self, exc: BaseException) -> ReplayStateUnavailable:
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, _SettingsRefused):
                return cause.error
            cause = cause.__cause__ or cause.__context__
        # Only the error type and the server address: a redis URL may hold a password.
        kind = type(exc).__name__
        _log.warning(
            "DPoP replay state unavailable (%s at %s); refusing request", kind, self._server()
        )
        return ReplayStateUnavailable(
            "DPoP replay state is unavailable; the request is refused rather than "
            "accepted without replay protection",
            details={**self._details(), "check": "replay_state", "error": kind},
        )

    def _partial(self, present: int, total: int) -> ReplayStateUnavailable:
        return ReplayStateUnavailable(
            f"{present} of {total} replay-state generation markers exist: this Redis "
            "lost part of its state, so it cannot be declared new",
            details={**self._details(), "check": "replay_state_lost"},
        )

    def _markers(self) -> list[str]:
        return [marker_key(self.prefix, f"{b:02x}") for b in range(BUCKETS)]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(prefix={self.prefix!r}, server={self._server()!r}, "
            f"max_entries_per_owner={self.max_entries_per_owner}, "
            f"acceptance_window={self.acceptance_window:g})"
        )


def _pool_kwargs(
    socket_timeout: float, socket_connect_timeout: float, max_connections: int, retries: int
) -> dict[str, Any]:
    if socket_timeout <= 0 or socket_connect_timeout <= 0:
        raise ValueError("socket timeouts must be positive seconds")
    if max_connections < 1 or retries < 0:
        raise ValueError("max_connections must be >= 1 and retries >= 0")
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout,
        "max_connections": max_connections,
        "health_check_interval": 0,
    }


def _install_hook(pool: Any, hook: Callable[[Any], object]) -> None:
    """Run ``hook`` on every connection ``pool`` (re)opens, including those it holds."""
    pool.connection_kwargs["redis_connect_func"] = hook
    held = [
        *getattr(pool, "_available_connections", ()),
        *getattr(pool, "_in_use_connections", ()),
    ]
    for conn in held:
        conn.redis_connect_func = hook


def _install_async_cluster_hook(client: Any, hook: Callable[[Any], object]) -> None:
    """The asyncio ``RedisCluster`` takes no ``redis_connect_func``; its nodes copy
    ``connection_kwargs`` when created, so the hook goes into every copy there is."""
    manager = client.nodes_manager
    for kwargs in (client.connection_kwargs, manager.connection_kwargs):
        kwargs["redis_connect_func"] = hook
    for node in [*manager.startup_nodes.values(), *manager.nodes_cache.values()]:
        node.connection_kwargs["redis_connect_func"] = hook
        for conn in getattr(node, "_connections", ()):
            conn.redis_connect_func = hook


def _drop_connections(client: Any) -> None:
    client.disconnect_connection_pools()


class RedisReplayCache(_Base):
    """A :class:`tokenlib.replay.ReplayCache` in Redis (blocking client; thread-safe).

    Build it with :meth:`from_url` (bounded pool, short timeouts, the settings check on
    every connection) or pass a ``redis.Redis`` / ``redis.cluster.RedisCluster``; the
    store then installs its connection check on that client and drops its open
    connections so each is checked when it reconnects.

    ``max_entries_per_owner`` (default :data:`tokenlib.replay.DEFAULT_MAX_PER_OWNER`,
    ``None`` = no quota) bounds an owner's live entries. ``acceptance_window`` (default
    :data:`DEFAULT_ACCEPTANCE_WINDOW`, 420 s) is how far before ``expires_at`` a proof
    may have been accepted — at least :func:`acceptance_window_for` of the verifying
    policy — used after a state loss. ``check_eviction_policy=False`` skips the
    ``maxmemory-policy`` check (only when the provider hides it and you verified it).
    """

    def __init__(
        self,
        client: redis.Redis | redis.cluster.RedisCluster,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_entries_per_owner: int | None = DEFAULT_MAX_PER_OWNER,
        acceptance_window: float = DEFAULT_ACCEPTANCE_WINDOW,
        check_eviction_policy: bool = True,
        _hook_installed: bool = False,
    ) -> None:
        super().__init__(
            prefix=prefix,
            max_entries_per_owner=max_entries_per_owner,
            acceptance_window=acceptance_window,
            check_eviction_policy=check_eviction_policy,
        )
        self._client = client
        if check_eviction_policy and not _hook_installed:
            if isinstance(client, redis.cluster.RedisCluster):
                client.user_on_connect_func = _sync_probe
                _drop_connections(client)
            else:
                _install_hook(client.connection_pool, _connect_checked)
                client.connection_pool.disconnect()
        self._script = client.register_script(CHECK_AND_STORE_LUA)

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
        cluster: bool = False,
        max_entries_per_owner: int | None = DEFAULT_MAX_PER_OWNER,
        acceptance_window: float = DEFAULT_ACCEPTANCE_WINDOW,
        check_eviction_policy: bool = True,
    ) -> RedisReplayCache:
        """Connect lazily to ``url`` (``redis://``, ``rediss://`` or ``unix://``).

        ``retries`` re-sends a command after a *connection* error (a pooled connection
        that died with a Redis restart), never after a timeout. ``cluster=True`` builds
        a ``RedisCluster`` from the same URL (one seed node). Timeouts are short on
        purpose: a request waiting on replay state holds a worker.
        """
        options = _pool_kwargs(socket_timeout, socket_connect_timeout, max_connections, retries)
        retry = Retry(NoBackoff(), retries, supported_errors=(redis.ConnectionError,))
        hook = check_eviction_policy
        client: redis.Redis | redis.cluster.RedisCluster
        if cluster:
            options.pop("health_check_interval")
            client = redis.cluster.RedisCluster.from_url(
                url,
                retry=retry,
                redis_connect_func=_sync_probe if hook else None,
                **options,
            )
        else:
            if hook:
                options["redis_connect_func"] = _connect_checked
            pool: redis.ConnectionPool = redis.ConnectionPool.from_url(url, retry=retry, **options)
            client = redis.Redis(connection_pool=pool, retry=retry)
        return cls(
            client,
            prefix=prefix,
            max_entries_per_owner=max_entries_per_owner,
            acceptance_window=acceptance_window,
            check_eviction_policy=check_eviction_policy,
            _hook_installed=True,
        )

    def check_and_store(
        self, key: str, *, expires_at: float, now: float, owner: str | None = None
    ) -> bool:
        """Record ``key`` until ``expires_at``; True if it was new, False on a replay.

        Raises :class:`~tokenlib.errors.ReplayQuotaExceeded` when ``owner`` holds its
        quota, :class:`~tokenlib.errors.ReplayStateUnavailable` when Redis cannot answer,
        is unsafely configured, or lost the state this proof's acceptance depends on.
        """
        call = self._prepare(key, expires_at=expires_at, now=now, owner=owner)
        try:
            raw = self._script(keys=list(call.keys), args=list(call.args))
        except _REDIS_ERRORS as exc:
            raise self._unavailable(exc) from None
        reply, answer = self._verdict(raw, call)
        if reply.flag == 1:
            self._spread_loss(call.args[0])
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _spread_loss(self, lost_at: str) -> None:
        # Runs once per loss. A cluster pipeline cannot carry EVAL: one call per bucket.
        try:
            if isinstance(self._client, redis.cluster.RedisCluster):
                for marker, gen, lost in self._spread_commands(lost_at):
                    self._client.eval(SPREAD_LOSS_LUA, 1, marker, gen, lost)
                return
            pipe = self._client.pipeline(transaction=False)
            for marker, gen, lost in self._spread_commands(lost_at):
                pipe.eval(SPREAD_LOSS_LUA, 1, marker, gen, lost)
            pipe.execute()
        except _REDIS_ERRORS as exc:
            self._spread_failed(exc)

    def check_settings(self) -> None:
        """Connect now and run the settings check (for start-up and readiness probes).

        Raises :class:`UnsafeRedisSettings` for an evicting or unreadable
        ``maxmemory-policy``, :class:`~tokenlib.errors.ReplayStateUnavailable` when
        Redis does not answer."""
        try:
            if isinstance(self._client, redis.cluster.RedisCluster):
                _drop_connections(self._client)
            else:
                self._client.connection_pool.disconnect()
            self._client.ping()
        except _REDIS_ERRORS as exc:
            raise self._unavailable(exc) from None

    def initialize(self) -> bool:
        """Declare a brand-new, empty Redis: create every generation marker without a
        loss time, so the first proofs are not held back as after a state loss.

        Only for a first deployment. Returns True if it created the markers, False if
        they all exist already; refuses (``ReplayStateUnavailable``) when only some
        exist — that is a partial loss, which must run its quarantine."""
        markers = self._markers()
        try:
            present = sum(int(self._client.exists(m)) for m in markers)
            if present == len(markers):
                return False
            if present:
                raise self._partial(present, len(markers))
            for m in markers:
                self._client.hsetnx(m, "gen", secrets.token_hex(8))
        except _REDIS_ERRORS as exc:
            raise self._unavailable(exc) from None
        return True

    def ping(self) -> bool:
        """True if Redis answers now (for readiness probes); never raises."""
        try:
            return bool(self._client.ping())
        except _REDIS_ERRORS:
            return False

    def close(self) -> None:
        """Release the pool's connections."""
        self._client.close()
        if not isinstance(self._client, redis.cluster.RedisCluster):
            self._client.connection_pool.disconnect()

    def __enter__(self) -> RedisReplayCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncRedisReplayCache(_Base):
    """:class:`RedisReplayCache` for asyncio (``redis.asyncio``): an
    :class:`tokenlib.replay.AsyncReplayCache` with the same script, checks and options,
    for :meth:`tokenlib.server.ResourceServer.averify` in ASGI servers. A Redis hang
    costs the awaiting request ``socket_timeout`` and blocks nothing else."""

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_entries_per_owner: int | None = DEFAULT_MAX_PER_OWNER,
        acceptance_window: float = DEFAULT_ACCEPTANCE_WINDOW,
        check_eviction_policy: bool = True,
        _hook_installed: bool = False,
    ) -> None:
        super().__init__(
            prefix=prefix,
            max_entries_per_owner=max_entries_per_owner,
            acceptance_window=acceptance_window,
            check_eviction_policy=check_eviction_policy,
        )
        self._client = client
        if check_eviction_policy and not _hook_installed:
            if isinstance(client, redis.asyncio.cluster.RedisCluster):
                _install_async_cluster_hook(client, _aconnect_checked)
            else:
                # Open connections are checked when they next reconnect; check_settings()
                # closes them to check now.
                _install_hook(client.connection_pool, _aconnect_checked)
        self._script = client.register_script(CHECK_AND_STORE_LUA)

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
        cluster: bool = False,
        max_entries_per_owner: int | None = DEFAULT_MAX_PER_OWNER,
        acceptance_window: float = DEFAULT_ACCEPTANCE_WINDOW,
        check_eviction_policy: bool = True,
    ) -> AsyncRedisReplayCache:
        """As :meth:`RedisReplayCache.from_url`, with ``redis.asyncio`` clients."""
        from redis.asyncio.retry import Retry as AsyncRetry

        options = _pool_kwargs(socket_timeout, socket_connect_timeout, max_connections, retries)
        retry = AsyncRetry(NoBackoff(), retries, supported_errors=(redis.ConnectionError,))
        hook: Callable[[Any], Awaitable[None]] | None = (
            _aconnect_checked if check_eviction_policy else None
        )
        client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
        if cluster:
            options.pop("health_check_interval")
            options.pop("max_connections")
            client = redis.asyncio.cluster.RedisCluster.from_url(url, retry=retry, **options)
            if hook is not None:
                _install_async_cluster_hook(client, hook)
        else:
            if hook is not None:
                options["redis_connect_func"] = hook
            pool = redis.asyncio.ConnectionPool.from_url(url, retry=retry, **options)
            client = redis.asyncio.Redis(connection_pool=pool, retry=retry)
        return cls(
            client,
            prefix=prefix,
            max_entries_per_owner=max_entries_per_owner,
            acceptance_window=acceptance_window,
            check_eviction_policy=check_eviction_policy,
            _hook_installed=True,
        )

    async def check_and_store(
        self, key: str, *, expires_at: float, now: float, owner: str | None = None
    ) -> bool:
        """As :meth:`RedisReplayCache.check_and_store`, awaited."""
        call = self._prepare(key, expires_at=expires_at, now=now, owner=owner)
        try:
            raw = await self._script(keys=list(call.keys), args=list(call.args))
        except _REDIS_ERRORS as exc:
            raise self._unavailable(exc) from None
        reply, answer = self._verdict(raw, call)
        if reply.flag == 1:
            await self._spread_loss(call.args[0])
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def _spread_loss(self, lost_at: str) -> None:
        try:
            if isinstance(self._client, redis.asyncio.cluster.RedisCluster):
                for marker, gen, lost in self._spread_commands(lost_at):
                    await self._client.eval(SPREAD_LOSS_LUA, 1, marker, gen, lost)
                return
            pipe = self._client.pipeline(transaction=False)
            for marker, gen, lost in self._spread_commands(lost_at):
                pipe.eval(SPREAD_LOSS_LUA, 1, marker, gen, lost)
            await pipe.execute()
        except _REDIS_ERRORS as exc:
            self._spread_failed(exc)

    async def check_settings(self) -> None:
        """As :meth:`RedisReplayCache.check_settings`, awaited."""
        try:
            if isinstance(self._client, redis.asyncio.cluster.RedisCluster):
                await self._client.aclose()
            else:
                await self._client.connection_pool.disconnect()
            await self._client.ping()
        except _REDIS_ERRORS as exc:
            raise self._unavailable(exc) from None

    async def initialize(self) -> bool:
        """As :meth:`RedisReplayCache.initialize`, awaited."""
        markers = self._markers()
        try:
            present = 0
            for m in markers:
                present += int(await self._client.exists(m))
            if present == len(markers):
                return False
            if present:
                raise self._partial(present, len(markers))
            for m in markers:
                await self._client.hsetnx(m, "gen", secrets.token_hex(8))
        except _REDIS_ERRORS as exc:
            raise self._unavailable(exc) from None
        return True

    async def ping(self) -> bool:
        """True if Redis answers now; never raises."""
        try:
            return bool(await self._client.ping())
        except _REDIS_ERRORS:
            return False

    async def aclose(self) -> None:
        """Release the pool's connections (a client built on a given pool leaves them
        open on ``aclose``)."""
        await self._client.aclose()
        if not isinstance(self._client, redis.asyncio.cluster.RedisCluster):
            await self._client.connection_pool.disconnect()

    async def __aenter__(self) -> AsyncRedisReplayCache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
