"""AsyncRedisReplayCache (redis.asyncio) keeps every guarantee of the blocking store — it
runs the same script and checks — and plugs into ResourceServer.averify (issue 12)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from tests.conftest import AUDIENCE, ISSUER, NOW
from tests.integrations._redis_servers import ConfiguredRedis
from tests.lab.conftest import REDIS_SERVER
from tokenlib.dpop import create_proof
from tokenlib.errors import ReplayDetected, ReplayQuotaExceeded, ReplayStateUnavailable
from tokenlib.integrations.redis import AsyncRedisReplayCache, UnsafeRedisSettings
from tokenlib.jwk import generate_key, jwk_thumbprint
from tokenlib.jwks import JWKSet
from tokenlib.replay import AsyncReplayCache, is_async_replay_cache
from tokenlib.server import ResourceServer

pytestmark = pytest.mark.redis

URL = "https://rs.example.com/items"


def _k(i: int, tag: str = "") -> str:
    return hashlib.sha256(f"async{tag}{i}".encode()).hexdigest()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ConfiguredRedis]:
    if REDIS_SERVER is None:
        pytest.skip("no redis-server binary on PATH (apt-get install redis-server)")
    srv = ConfiguredRedis(binary=REDIS_SERVER, directory=tmp_path)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_satisfies_the_async_protocol() -> None:
    cache = AsyncRedisReplayCache.from_url("redis://127.0.0.1:1/0")
    assert isinstance(cache, AsyncReplayCache)
    assert is_async_replay_cache(cache)
    assert "s3cret" not in repr(AsyncRedisReplayCache.from_url("redis://u:s3cret@127.0.0.1:1/0"))


def test_replay_quota_and_state_loss(server: ConfiguredRedis) -> None:
    async def run() -> None:
        async with AsyncRedisReplayCache.from_url(server.url, max_entries_per_owner=3) as cache:
            assert await cache.initialize() is True
            assert await cache.initialize() is False
            store = cache.check_and_store
            assert await store(_k(0), expires_at=NOW + 300, now=NOW, owner="a") is True
            assert await store(_k(0), expires_at=NOW + 300, now=NOW, owner="a") is False
            for i in (1, 2):
                assert await store(_k(i), expires_at=NOW + 300, now=NOW, owner="a")
            with pytest.raises(ReplayQuotaExceeded) as quota:
                await store(_k(3), expires_at=NOW + 300, now=NOW, owner="a")
            assert quota.value.headers["Retry-After"] == "300"
            assert await store(_k(3), expires_at=NOW + 300, now=NOW, owner="b") is True
            server.restart_empty()
            with pytest.raises(ReplayStateUnavailable) as lost:
                await store(_k(0), expires_at=NOW + 300, now=NOW + 1, owner="a")
            assert lost.value.details["check"] == "replay_state_lost"
            later = NOW + 1 + cache.acceptance_window
            assert await store(_k(0), expires_at=later + 300, now=later, owner="a") is True

    asyncio.run(run())


def test_a_client_passed_in_gets_the_settings_check(server: ConfiguredRedis) -> None:
    async def run() -> None:
        raw = redis.Redis.from_url(server.url)
        raw.config_set("maxmemory-policy", "volatile-ttl")
        raw.close()
        client = redis.asyncio.Redis.from_url(server.url)
        cache = AsyncRedisReplayCache(client)
        with pytest.raises(UnsafeRedisSettings, match="volatile-ttl"):
            await cache.check_and_store(_k(0), expires_at=NOW + 300, now=NOW)
        await cache.aclose()

    asyncio.run(run())


def test_resource_server_averify_with_the_async_store(
    server: ConfiguredRedis, jwks: JWKSet, make_token: Callable[..., str]
) -> None:
    key = generate_key("ES256")
    token = make_token(jkt=jwk_thumbprint(key))

    def headers(at: float) -> list[tuple[str, str]]:
        proof = create_proof(key, "GET", URL, access_token=token, now=at)
        return [("Authorization", f"DPoP {token}"), ("DPoP", proof)]

    async def run() -> None:
        async with AsyncRedisReplayCache.from_url(server.url) as cache:
            await cache.initialize()
            rs = ResourceServer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, replay_cache=cache)
            first = headers(NOW)
            grant: Any = await rs.averify("GET", URL, first, now=NOW)
            assert grant.binding == "dpop"
            with pytest.raises(ReplayDetected):
                await rs.averify("GET", URL, first, now=NOW + 1)
            # A second RS instance with its own client shares the replay state.
            async with AsyncRedisReplayCache.from_url(server.url) as other_cache:
                other = ResourceServer(
                    issuer=ISSUER, audience=AUDIENCE, jwks=jwks, replay_cache=other_cache
                )
                with pytest.raises(ReplayDetected):
                    await other.averify("GET", URL, first, now=NOW + 2)
                assert await other.averify("GET", URL, headers(NOW + 3), now=NOW + 3)

    asyncio.run(run())
