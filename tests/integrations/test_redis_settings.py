"""The replay store refuses a Redis that may evict replay entries (issue 11), checked at
start and on every reconnect, with CONFIG GET or, where CONFIG is disabled, INFO memory."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integrations._redis_servers import ConfiguredRedis
from tests.lab.conftest import REDIS_SERVER
from tokenlib.errors import ReplayStateUnavailable
from tokenlib.integrations._redis_scripts import SettingsProbe
from tokenlib.integrations.redis import (
    AsyncRedisReplayCache,
    RedisReplayCache,
    UnsafeRedisSettings,
)

pytestmark = pytest.mark.redis

NOW = 1_700_000_000.0
LATER = NOW + 10_000
KEY = hashlib.sha256(b"jti-settings").hexdigest()
EVICTING = (
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[Any]:
    if REDIS_SERVER is None:
        pytest.skip("no redis-server binary on PATH (apt-get install redis-server)")
    started: list[ConfiguredRedis] = []

    def start(*extra: str) -> ConfiguredRedis:
        directory = tmp_path / f"r{len(started)}"
        directory.mkdir()
        server = ConfiguredRedis(binary=REDIS_SERVER, directory=directory, extra=extra)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _store(cache: RedisReplayCache, key: str = KEY) -> bool:
    return cache.check_and_store(key, expires_at=LATER + 60, now=LATER, owner="jkt-a")


def test_noeviction_is_accepted(start_redis: Any) -> None:
    server = start_redis("--maxmemory-policy", "noeviction")
    with RedisReplayCache.from_url(server.url) as cache:
        cache.check_settings()
        assert cache.initialize() is True
        assert _store(cache) is True
        assert _store(cache) is False


@pytest.mark.parametrize("policy", EVICTING)
def test_evicting_policy_is_refused_at_start(start_redis: Any, policy: str) -> None:
    server = start_redis("--maxmemory-policy", policy, "--maxmemory", "64mb")
    with RedisReplayCache.from_url(server.url) as cache:
        with pytest.raises(UnsafeRedisSettings) as info:
            cache.check_settings()
        err = info.value
        assert isinstance(err, ReplayStateUnavailable)
        assert (err.status_code, err.error) == (503, "temporarily_unavailable")
        assert err.details["maxmemory_policy"] == policy
        assert policy in err.description
        assert "noeviction" in err.description
        # Each request fails closed with the same clear error; nothing was written.
        with pytest.raises(UnsafeRedisSettings):
            _store(cache)
    raw = redis.Redis.from_url(server.url)
    assert raw.dbsize() == 0
    raw.close()


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru"])
def test_evicting_policy_is_refused_by_the_async_client(start_redis: Any, policy: str) -> None:
    import asyncio

    server = start_redis("--maxmemory-policy", policy)

    async def run() -> None:
        async with AsyncRedisReplayCache.from_url(server.url) as cache:
            with pytest.raises(UnsafeRedisSettings, match=policy):
                await cache.check_settings()
            with pytest.raises(UnsafeRedisSettings):
                await cache.check_and_store(KEY, expires_at=LATER + 60, now=LATER)

    asyncio.run(run())


def test_policy_changed_while_running_is_refused_on_reconnect(start_redis: Any) -> None:
    server = start_redis("--maxmemory-policy", "noeviction")
    raw = redis.Redis.from_url(server.url)
    with RedisReplayCache.from_url(server.url) as cache:
        assert cache.initialize() is True
        assert _store(cache) is True
        raw.config_set("maxmemory-policy", "volatile-lru")
        # A reconnect (here: the server drops our connections) runs the check again.
        raw.client_kill_filter(_type="normal", skipme=True)
        with pytest.raises(UnsafeRedisSettings, match="volatile-lru"):
            _store(cache, "ab" * 32)
        raw.config_set("maxmemory-policy", "noeviction")
        assert _store(cache, "ab" * 32) is True
    raw.close()


@pytest.mark.parametrize(("policy", "accepted"), [("noeviction", True), ("allkeys-lru", False)])
def test_info_memory_when_config_is_disabled(start_redis: Any, policy: str, accepted: bool) -> None:
    """Managed Redis (ElastiCache, Memorystore, Azure) often disables CONFIG."""
    server = start_redis("--maxmemory-policy", policy, "--rename-command", "CONFIG", "")
    with RedisReplayCache.from_url(server.url) as cache:
        if accepted:
            cache.check_settings()
            assert cache.initialize() is True
            assert _store(cache) is True
        else:
            with pytest.raises(UnsafeRedisSettings, match=policy):
                cache.check_settings()


def test_unreadable_policy_fails_closed(start_redis: Any) -> None:
    server = start_redis("--rename-command", "CONFIG", "", "--rename-command", "INFO", "")
    with RedisReplayCache.from_url(server.url) as cache:
        with pytest.raises(UnsafeRedisSettings, match="cannot read") as info:
            cache.check_settings()
        assert info.value.details["maxmemory_policy"] == "unknown"
    # The documented escape hatch, for a provider that hides both and was checked by hand.
    with RedisReplayCache.from_url(server.url, check_eviction_policy=False) as cache:
        cache.check_settings()
        assert cache.initialize() is True
        assert _store(cache) is True


def test_a_client_passed_in_is_checked_too(start_redis: Any) -> None:
    server = start_redis("--maxmemory-policy", "allkeys-lfu")
    client = redis.Redis.from_url(server.url)
    assert client.ping() is True  # an already-open connection is dropped and re-checked
    cache = RedisReplayCache(client)
    with pytest.raises(UnsafeRedisSettings, match="allkeys-lfu"):
        _store(cache)
    cache.close()


def test_unreachable_at_start_is_unavailable_not_unsafe() -> None:
    with RedisReplayCache.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2) as cache:
        with pytest.raises(ReplayStateUnavailable) as info:
            cache.check_settings()
        assert not isinstance(info.value, UnsafeRedisSettings)


@pytest.mark.parametrize(
    ("step", "reply", "policy"),
    [
        (0, [b"maxmemory-policy", b"noeviction"], "noeviction"),
        (0, {b"maxmemory-policy": b"allkeys-lru"}, "allkeys-lru"),
        (0, [], None),
        (0, redis.ResponseError("unknown command"), None),
        (1, "# Memory\r\nused_memory:1\r\nmaxmemory_policy:volatile-ttl\r\n", "volatile-ttl"),
        (1, b"# Memory\r\nmaxmemory_policy:noeviction\r\n", "noeviction"),
        (1, "# Memory\r\nused_memory:1\r\n", None),
    ],
)
def test_policy_parsing(step: int, reply: object, policy: str | None) -> None:
    assert SettingsProbe.policy_from(step, reply) == policy


@pytest.mark.parametrize("policy", [None, "", "allkeys-lrm", *EVICTING])
def test_anything_but_noeviction_is_refused(policy: str | None) -> None:
    assert SettingsProbe.refusal(policy, server="x") is not None
    assert SettingsProbe.refusal("noeviction", server="x") is None


def test_unix_socket(start_redis: Any, tmp_path: Path) -> None:
    """The lab runs its private Redis on a Unix socket; the check works there too."""
    sock = tmp_path / "redis.sock"
    server = start_redis("--unixsocket", str(sock), "--unixsocketperm", "700")
    with RedisReplayCache.from_url(f"unix://{sock}") as cache:
        cache.check_settings()
        assert cache.initialize() is True
        assert _store(cache) is True
        assert "unix:" in repr(cache)
    raw = redis.Redis.from_url(server.url)
    raw.config_set("maxmemory-policy", "allkeys-lru")
    raw.close()
    with RedisReplayCache.from_url(f"unix://{sock}") as cache:
        with pytest.raises(UnsafeRedisSettings) as info:
            cache.check_settings()
        assert info.value.details["server"] == f"unix:{sock}"
