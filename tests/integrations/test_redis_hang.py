"""A hung Redis (SIGSTOP: connections stay open, nothing answers) costs a DPoP request at
most the socket timeout and a 503 — never an accepted proof, never a stuck worker — and
service resumes by itself after SIGCONT (issues 11 and 12)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integrations._redis_servers import ConfiguredRedis
from tests.lab.conftest import REDIS_SERVER
from tokenlib.errors import ReplayStateUnavailable
from tokenlib.integrations.redis import AsyncRedisReplayCache, RedisReplayCache

pytestmark = [pytest.mark.redis, pytest.mark.slow]

NOW = 1_700_000_000.0
TIMEOUT = 0.3
# Generous bound for a loaded 2-core CI box: the point is "bounded", not "fast".
BOUND = 10 * TIMEOUT


def _k(i: int) -> str:
    return hashlib.sha256(f"hang{i}".encode()).hexdigest()


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


def test_hang_fails_closed_within_the_timeout_and_recovers(server: ConfiguredRedis) -> None:
    with RedisReplayCache.from_url(
        server.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
    ) as cache:
        assert cache.initialize() is True
        assert cache.check_and_store(_k(0), expires_at=NOW + 300, now=NOW, owner="a")
        with server.frozen():
            for i in (1, 2):  # the pooled connection, then a fresh one (backlog accepts it)
                started = time.monotonic()
                with pytest.raises(ReplayStateUnavailable) as info:
                    cache.check_and_store(_k(i), expires_at=NOW + 300, now=NOW, owner="a")
                assert time.monotonic() - started < BOUND
                assert info.value.details["error"] == "TimeoutError"
            assert cache.ping() is False
        # SIGCONT: the server runs what it had queued; the store answers again.
        assert cache.check_and_store(_k(3), expires_at=NOW + 300, now=NOW, owner="a") is True
        assert cache.check_and_store(_k(0), expires_at=NOW + 300, now=NOW, owner="a") is False


def test_async_hang_fails_closed_and_keeps_the_event_loop_free(
    server: ConfiguredRedis,
) -> None:
    async def run() -> None:
        async with AsyncRedisReplayCache.from_url(
            server.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        ) as cache:
            assert await cache.initialize() is True
            assert await cache.check_and_store(_k(0), expires_at=NOW + 300, now=NOW, owner="a")
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            task = asyncio.create_task(ticker())
            with server.frozen():
                started = time.monotonic()
                results = await asyncio.gather(
                    *(
                        cache.check_and_store(_k(i), expires_at=NOW + 300, now=NOW, owner="a")
                        for i in range(1, 9)
                    ),
                    return_exceptions=True,
                )
                elapsed = time.monotonic() - started
            task.cancel()
            assert all(isinstance(r, ReplayStateUnavailable) for r in results), results
            assert elapsed < BOUND
            # The loop kept running while eight requests waited on the hung server.
            assert ticks >= 5
            assert await cache.check_and_store(_k(20), expires_at=NOW + 300, now=NOW) is True
            assert (
                await cache.check_and_store(_k(0), expires_at=NOW + 300, now=NOW, owner="a")
                is False
            )

    asyncio.run(run())
