"""Redis Cluster: every key one proof touches (entry, owner's set, generation marker) is in
one hash slot, so the script runs on a cluster; blocking and asyncio cluster clients work.

The cluster here is a single redis-server with cluster mode on and all 16,384 slots
(enough to exercise redis-py's cluster clients, slot routing and the CROSSSLOT rule)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.integrations._redis_servers import ConfiguredRedis
from tests.lab.conftest import REDIS_SERVER, free_port
from tokenlib.errors import ReplayQuotaExceeded, ReplayStateUnavailable
from tokenlib.integrations.redis import (
    AsyncRedisReplayCache,
    RedisReplayCache,
    UnsafeRedisSettings,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

NOW = 1_700_000_000.0


def _k(i: int) -> str:
    return hashlib.sha256(f"cluster{i}".encode()).hexdigest()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ConfiguredRedis]:
    if REDIS_SERVER is None:
        pytest.skip("no redis-server binary on PATH (apt-get install redis-server)")
    srv = ConfiguredRedis(
        binary=REDIS_SERVER,
        directory=tmp_path,
        extra=(
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(tmp_path / "nodes.conf"),
            # the default bus port (port + 10000) overflows for high ephemeral ports
            "--cluster-port",
            str(free_port()),
        ),
    )
    srv.start()
    raw = redis.Redis.from_url(srv.url)
    try:
        raw.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 10
        while raw.cluster("info")["cluster_state"] != "ok":
            assert time.monotonic() < deadline, "cluster did not become ok"
            time.sleep(0.05)  # bounded wait for the slot assignment to settle
        yield srv
    finally:
        raw.close()
        srv.stop()


def test_keys_of_one_owner_share_a_slot(cluster: ConfiguredRedis) -> None:
    raw = redis.Redis.from_url(cluster.url)
    with RedisReplayCache.from_url(cluster.url, cluster=True) as cache:
        for owner in ("jkt-a", "jkt-b", "client-1"):
            entry = cache.redis_key(_k(1), owner=owner)
            tag = entry.split(":j:")[0]
            names = (entry, f"{tag}:g", f"{tag}:o:0123")
            slots = {raw.cluster("keyslot", name) for name in names}
            assert len(slots) == 1
    raw.close()


def test_blocking_cluster_client(cluster: ConfiguredRedis) -> None:
    with RedisReplayCache.from_url(cluster.url, cluster=True, max_entries_per_owner=2) as cache:
        cache.check_settings()
        assert cache.initialize() is True
        assert cache.check_and_store(_k(0), expires_at=NOW + 60, now=NOW, owner="a") is True
        assert cache.check_and_store(_k(0), expires_at=NOW + 60, now=NOW, owner="a") is False
        assert cache.check_and_store(_k(1), expires_at=NOW + 60, now=NOW, owner="a") is True
        with pytest.raises(ReplayQuotaExceeded):
            cache.check_and_store(_k(2), expires_at=NOW + 60, now=NOW, owner="a")
        raw = redis.Redis.from_url(cluster.url)
        raw.flushall()
        raw.close()
        with pytest.raises(ReplayStateUnavailable) as lost:
            cache.check_and_store(_k(0), expires_at=NOW + 60, now=NOW + 1, owner="a")
        assert lost.value.details["check"] == "replay_state_lost"
        # The loss was spread to every bucket through the cluster pipeline.
        raw = redis.Redis.from_url(cluster.url)
        assert len(raw.keys(cache.prefix + "{*}:g")) == 256
        raw.close()


def test_cluster_client_passed_in_is_checked(cluster: ConfiguredRedis) -> None:
    raw = redis.Redis.from_url(cluster.url)
    raw.config_set("maxmemory-policy", "allkeys-lru")
    client = redis.cluster.RedisCluster.from_url(cluster.url)
    cache = RedisReplayCache(client)
    with pytest.raises(UnsafeRedisSettings, match="allkeys-lru"):
        cache.check_and_store(_k(0), expires_at=NOW + 60, now=NOW, owner="a")
    raw.config_set("maxmemory-policy", "noeviction")
    raw.close()
    cache.close()


def test_asyncio_cluster_client(cluster: ConfiguredRedis) -> None:
    async def run() -> None:
        async with AsyncRedisReplayCache.from_url(cluster.url, cluster=True) as cache:
            await cache.check_settings()
            assert await cache.initialize() is True
            store = cache.check_and_store
            assert await store(_k(0), expires_at=NOW + 60, now=NOW, owner="a") is True
            assert await store(_k(0), expires_at=NOW + 60, now=NOW, owner="a") is False
        raw = redis.Redis.from_url(cluster.url)
        raw.config_set("maxmemory-policy", "volatile-lru")
        raw.close()
        async with AsyncRedisReplayCache.from_url(cluster.url, cluster=True) as cache:
            with pytest.raises(UnsafeRedisSettings, match="volatile-lru"):
                await cache.check_and_store(_k(1), expires_at=NOW + 60, now=NOW, owner="a")

    asyncio.run(run())
