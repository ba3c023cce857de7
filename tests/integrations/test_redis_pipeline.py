"""The Redis store's hot path (issue 12, throughput): one hand-packed ``EVALSHA`` per
proof below redis-py's command layer, and auto-pipelining of the asyncio store — every
caller still gets its own answer or error, the connection never falls out of step, and a
batch is bounded."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.connection
import redis.connection

from tests.integrations._redis_servers import ConfiguredRedis
from tests.lab.conftest import REDIS_SERVER
from tokenlib.errors import ReplayQuotaExceeded, ReplayStateUnavailable
from tokenlib.integrations._redis_scripts import CHECK_AND_STORE_LUA, Call, Plan
from tokenlib.integrations.redis import MAX_BATCH, AsyncRedisReplayCache, RedisReplayCache

pytestmark = pytest.mark.redis

NOW = 1_700_000_000.0


def _k(i: int, tag: str = "") -> str:
    return hashlib.sha256(f"pipe{tag}{i}".encode()).hexdigest()


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


class _Writes:
    """Counts the writes carrying EVALSHA commands (round trips of the hot path), and the
    commands in each."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cls: Any) -> None:
        self.sizes: list[int] = []
        original = cls.send_packed_command
        writes = self

        def note(command: Any) -> None:
            data = command if isinstance(command, bytes) else b"".join(command)
            if b"EVALSHA" in data:
                writes.sizes.append(data.count(b"EVALSHA"))

        if asyncio.iscoroutinefunction(original):

            async def counted(conn: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
                note(command)
                return await original(conn, command, *args, **kwargs)

        else:

            def counted(conn: Any, command: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                note(command)
                return original(conn, command, *args, **kwargs)

        monkeypatch.setattr(cls, "send_packed_command", counted)

    @property
    def count(self) -> int:
        return len(self.sizes)


def _evalsha_calls(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.mark.parametrize("owner", [None, "jkt-1", "ü-owner"])
@pytest.mark.parametrize("key", ["k", "x" * 64, "y" * 65, "ключ"])
def test_packed_command_is_byte_for_byte_what_redis_py_would_send(
    key: str, owner: str | None
) -> None:
    plan = Plan(prefix="p:", window=420.0, quota=5)
    call = plan.call(key, expires_at=NOW + 360.5, now=NOW, owner=owner, seen={"ab": ("g", 3)})
    sha = hashlib.sha1(CHECK_AND_STORE_LUA.encode()).hexdigest()  # noqa: S324
    expected = b"".join(
        redis.connection.Connection().pack_command("EVALSHA", sha, 3, *call.keys, *call.args)
    )
    assert plan.pack(call) == expected
    # The one-off builder gives the same keys and constant arguments.
    again = Call.build(
        prefix="p:", key=key, expires_at=NOW + 360.5, now=NOW, owner=owner, window=420.0,
        quota=5, seen={"ab": ("g", 3)},
    )  # fmt: skip
    assert again.keys == call.keys
    assert again.args[:3] == call.args[:3]
    assert again.args[4:] == call.args[4:]
    assert again.args[3] != call.args[3]  # a fresh generation id per call


def test_generation_ids_are_unique_per_call_and_per_store() -> None:
    plans = [Plan(prefix="p:", window=420.0, quota=None) for _ in range(2)]
    ids = {
        plan.call(f"k{i}", expires_at=NOW + 1, now=NOW, owner=None, seen={}).args[3]
        for plan in plans
        for i in range(500)
    }
    assert len(ids) == 1000


def test_sync_store_one_evalsha_per_check_and_the_connection_stays_in_step(
    server: ConfiguredRedis,
) -> None:
    with RedisReplayCache.from_url(server.url, max_entries_per_owner=3) as cache:
        cache.initialize()
        assert cache.check_and_store(_k(9), expires_at=NOW + 300, now=NOW)  # loads the script
        before = _evalsha_calls(server.url)
        assert cache.check_and_store(_k(0), expires_at=NOW + 300, now=NOW, owner="a") is True
        assert cache.check_and_store(_k(0), expires_at=NOW + 300, now=NOW, owner="a") is False
        assert cache.check_and_store(_k(1), expires_at=NOW + 300, now=NOW) is True
        assert _evalsha_calls(server.url) - before == 3
        # The next command on the same pooled connection reads its own reply.
        assert cache.ping() is True
        assert cache._client.get("no-such-key") is None
        for i in (2, 3):
            assert cache.check_and_store(_k(i), expires_at=NOW + 300, now=NOW, owner="a")
        with pytest.raises(ReplayQuotaExceeded):
            cache.check_and_store(_k(4), expires_at=NOW + 300, now=NOW, owner="a")
        ttl = cache._client.pttl(cache.redis_key(_k(1)))
        assert 299_000 < ttl <= 300_000  # TTL derived in the script = expires_at - now


def test_sync_store_reloads_a_flushed_script_once(server: ConfiguredRedis) -> None:
    with RedisReplayCache.from_url(server.url) as cache:
        cache.initialize()
        assert cache.check_and_store(_k(0), expires_at=NOW + 300, now=NOW, owner="a")
        cache._client.script_flush()
        assert cache.check_and_store(_k(1), expires_at=NOW + 300, now=NOW, owner="a") is True
        assert cache.check_and_store(_k(1), expires_at=NOW + 300, now=NOW, owner="a") is False
        assert cache.ping() is True


def test_sync_error_reply_fails_closed_and_keeps_the_pool_usable(
    server: ConfiguredRedis,
) -> None:
    with RedisReplayCache.from_url(server.url) as cache:
        cache.initialize()
        call = cache._prepare(_k(0), expires_at=NOW + 300, now=NOW, owner="victim")
        cache._client.set(call.keys[2], "not a sorted set")  # WRONGTYPE inside the script
        with pytest.raises(ReplayStateUnavailable) as info:
            cache.check_and_store(_k(0), expires_at=NOW + 300, now=NOW, owner="victim")
        assert info.value.details["error"] == "ResponseError"
        assert cache.check_and_store(_k(1), expires_at=NOW + 300, now=NOW, owner="b") is True


def test_async_calls_of_one_tick_share_one_round_trip_with_their_own_answers(
    server: ConfiguredRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run() -> None:
        async with AsyncRedisReplayCache.from_url(server.url, max_entries_per_owner=2) as cache:
            await cache.initialize()
            assert (
                await cache.check_and_store(_k(0), expires_at=NOW + 300, now=NOW) is True
            )  # + load
            broken = cache._prepare(_k(9), expires_at=NOW + 300, now=NOW, owner="broken")
            await cache._client.set(broken.keys[2], "not a sorted set")
            writes = _Writes(monkeypatch, redis.asyncio.connection.Connection)
            before = _evalsha_calls(server.url)
            store = cache.check_and_store
            results = await asyncio.gather(
                store(_k(0), expires_at=NOW + 300, now=NOW),  # replay of an older proof
                store(_k(1), expires_at=NOW + 300, now=NOW),  # new
                store(_k(1), expires_at=NOW + 300, now=NOW),  # same proof twice: 2nd replay
                store(_k(2), expires_at=NOW + 300, now=NOW, owner="q"),
                store(_k(3), expires_at=NOW + 300, now=NOW, owner="q"),
                store(_k(4), expires_at=NOW + 300, now=NOW, owner="q"),  # over its quota
                store(_k(9), expires_at=NOW + 300, now=NOW, owner="broken"),  # error reply
                store(_k(5), expires_at=NOW + 300, now=NOW, owner="other"),
                return_exceptions=True,
            )
            assert writes.count == 1
            assert _evalsha_calls(server.url) - before == 8  # still one EVALSHA per check
            assert results[:5] == [False, True, False, True, True]
            assert isinstance(results[5], ReplayQuotaExceeded)
            assert isinstance(results[6], ReplayStateUnavailable)
            assert results[6].details["error"] == "ResponseError"
            assert results[7] is True
            assert await cache.ping() is True  # the connection is in step

    asyncio.run(run())


def test_async_batches_are_bounded(
    server: ConfiguredRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run() -> None:
        async with AsyncRedisReplayCache.from_url(server.url) as cache:
            await cache.initialize()
            assert await cache.check_and_store(_k(-1), expires_at=NOW + 300, now=NOW)  # + load
            writes = _Writes(monkeypatch, redis.asyncio.connection.Connection)
            n = 2 * MAX_BATCH + 10
            results = await asyncio.gather(
                *(
                    cache.check_and_store(_k(i, "b"), expires_at=NOW + 300, now=NOW)
                    for i in range(n)
                )
            )
            assert results == [True] * n
            # ceil(n / MAX_BATCH) round trips, not one nor n
            assert sorted(writes.sizes) == [10, MAX_BATCH, MAX_BATCH]

    asyncio.run(run())


def test_async_store_reloads_a_flushed_script_inside_a_batch(server: ConfiguredRedis) -> None:
    async def run() -> None:
        async with AsyncRedisReplayCache.from_url(server.url) as cache:
            await cache.initialize()
            await cache._client.script_flush()
            results = await asyncio.gather(
                *(
                    cache.check_and_store(_k(i % 5, "f"), expires_at=NOW + 300, now=NOW)
                    for i in range(10)
                )
            )
            assert results == [True] * 5 + [False] * 5
            assert await cache.ping() is True

    asyncio.run(run())


def test_a_cancelled_caller_does_not_disturb_its_batch(server: ConfiguredRedis) -> None:
    async def run() -> None:
        async with AsyncRedisReplayCache.from_url(server.url) as cache:
            await cache.initialize()
            tasks = [
                asyncio.create_task(
                    cache.check_and_store(_k(i, "c"), expires_at=NOW + 300, now=NOW)
                )
                for i in range(6)
            ]
            await asyncio.sleep(0)  # every task has submitted its command
            tasks[2].cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert isinstance(results[2], asyncio.CancelledError)
            assert [r for i, r in enumerate(results) if i != 2] == [True] * 5
            # The cancelled caller's proof was still recorded: fail closed on a re-send.
            assert await cache.check_and_store(_k(2, "c"), expires_at=NOW + 300, now=NOW) is False

    asyncio.run(run())


def test_async_refused_settings_reach_every_caller_of_the_batch(tmp_path: Path) -> None:
    if REDIS_SERVER is None:
        pytest.skip("no redis-server binary on PATH (apt-get install redis-server)")
    srv = ConfiguredRedis(
        binary=REDIS_SERVER, directory=tmp_path, extra=("--maxmemory-policy", "allkeys-lru")
    )
    srv.start()
    try:

        async def run() -> list[object]:
            async with AsyncRedisReplayCache.from_url(srv.url) as cache:
                return await asyncio.gather(
                    *(
                        cache.check_and_store(_k(i, "s"), expires_at=NOW + 300, now=NOW)
                        for i in range(4)
                    ),
                    return_exceptions=True,
                )

        results = asyncio.run(run())
    finally:
        srv.stop()
    assert all(isinstance(r, ReplayStateUnavailable) for r in results), results
    assert all(r.details["check"] == "redis_settings" for r in results)  # type: ignore[union-attr]


@pytest.mark.slow
def test_a_batch_whose_callers_all_gave_up_stops_waiting_on_a_hung_redis(
    server: ConfiguredRedis,
) -> None:
    async def run() -> None:
        async with AsyncRedisReplayCache.from_url(server.url, socket_timeout=5.0) as cache:
            await cache.initialize()
            assert await cache.check_and_store(_k(0, "h"), expires_at=NOW + 300, now=NOW)
            pipeline = cache._pipeline
            assert pipeline is not None
            with server.frozen():
                calls = [
                    asyncio.wait_for(
                        cache.check_and_store(_k(i, "h"), expires_at=NOW + 300, now=NOW), 0.2
                    )
                    for i in range(1, 4)
                ]
                results = await asyncio.gather(*calls, return_exceptions=True)
                assert all(isinstance(r, TimeoutError) for r in results), results
                started = asyncio.get_running_loop().time()
                while pipeline._tasks and asyncio.get_running_loop().time() - started < 2.0:
                    await asyncio.sleep(0.01)
                assert not pipeline._tasks  # not held until socket_timeout (5 s)
            assert await cache.check_and_store(_k(9, "h"), expires_at=NOW + 300, now=NOW)

    asyncio.run(run())


@pytest.mark.parametrize("owner", ["", 5, ["x"], b"jkt"])
def test_a_bad_owner_is_a_value_error_even_when_unhashable(owner: Any) -> None:
    plan = Plan(prefix="p:", window=420.0, quota=5)
    with pytest.raises(ValueError, match="owner"):
        plan.call("k", expires_at=NOW + 1, now=NOW, owner=owner, seen={})


def test_the_owner_memo_stays_bounded_under_a_flood_of_owners() -> None:
    plan = Plan(prefix="p:", window=420.0, quota=5)
    first = plan.call("k", expires_at=NOW + 1, now=NOW, owner="owner-0", seen={})
    for i in range(Plan.OWNER_MEMO + 500):
        plan.call("k", expires_at=NOW + 1, now=NOW, owner=f"owner-{i}", seen={})
        assert len(plan._owners) <= Plan.OWNER_MEMO
    # Forgetting an owner changes nothing: its keys are recomputed the same.
    again = plan.call("k", expires_at=NOW + 1, now=NOW, owner="owner-0", seen={})
    assert again.keys == first.keys
