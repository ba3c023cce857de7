"""RedisReplayCache against a real redis-server: atomic, namespaced, fails closed, recovers.

Changed on purpose with the hardening of issue 11: keys carry a Redis Cluster hash tag
(``P{bb}:j:<key>``), so tests ask ``cache.redis_key`` for names; a fresh Redis is declared
new with ``cache.initialize()`` (otherwise its missing generation markers read as a state
loss); and after a restart without persistence the old window is refused (503) instead of
accepted again — see test_redis_state.py for that behaviour in full.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import queue
import time
from typing import Any

import pytest
import redis

from tests.lab.conftest import RedisServer
from tokenlib.errors import ReplayStateUnavailable
from tokenlib.integrations.redis import DEFAULT_PREFIX, RedisReplayCache

pytestmark = pytest.mark.redis

NOW = 1_700_000_000.0
KEY = hashlib.sha256(b"jti-1").hexdigest()


@pytest.fixture
def cache(redis_server: RedisServer) -> Any:
    with RedisReplayCache.from_url(redis_server.url) as c:
        assert c.initialize() is True
        yield c


@pytest.fixture
def raw(redis_server: RedisServer) -> Any:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def test_first_use_accepted_second_rejected(cache: RedisReplayCache) -> None:
    assert cache.check_and_store(KEY, expires_at=NOW + 300, now=NOW) is True
    assert cache.check_and_store(KEY, expires_at=NOW + 300, now=NOW + 1) is False
    other = hashlib.sha256(b"jti-2").hexdigest()
    assert cache.check_and_store(other, expires_at=NOW + 300, now=NOW) is True


@pytest.mark.parametrize(
    ("window", "expected_ms"), [(300.0, 300_000), (70.25, 70_250), (0.0004, 1)]
)
def test_ttl_covers_the_whole_window(
    cache: RedisReplayCache, raw: redis.Redis, window: float, expected_ms: int
) -> None:
    cache.check_and_store(KEY, expires_at=NOW + window, now=NOW)
    pttl = int(raw.pttl(cache.redis_key(KEY)))
    # PTTL counts down from the moment of SET; allow what the round trip took, never more.
    assert expected_ms - 1000 < pttl <= expected_ms


def test_expired_window_still_stored_briefly(cache: RedisReplayCache, raw: redis.Redis) -> None:
    assert cache.check_and_store(KEY, expires_at=NOW - 10, now=NOW) is True
    assert raw.pttl(cache.redis_key(KEY)) in (-2, 0, 1)


def test_prefix_namespaces_keys(redis_server: RedisServer, raw: redis.Redis) -> None:
    with (
        RedisReplayCache.from_url(redis_server.url, prefix="api-a:") as a,
        RedisReplayCache.from_url(redis_server.url, prefix="api-b:") as b,
    ):
        assert a.initialize() is True
        assert b.initialize() is True
        assert a.check_and_store(KEY, expires_at=NOW + 60, now=NOW) is True
        assert b.check_and_store(KEY, expires_at=NOW + 60, now=NOW) is True
        assert a.check_and_store(KEY, expires_at=NOW + 60, now=NOW) is False
        assert a.redis_key(KEY).startswith("api-a:{")
        assert b.redis_key(KEY).startswith("api-b:{")
    assert sorted(raw.keys("*:j:*")) == sorted(
        [a.redis_key(KEY).encode(), b.redis_key(KEY).encode()]
    )


def test_long_keys_are_hashed(cache: RedisReplayCache, raw: redis.Redis) -> None:
    long_key = "x" * 5000
    assert cache.check_and_store(long_key, expires_at=NOW + 60, now=NOW) is True
    assert cache.check_and_store(long_key, expires_at=NOW + 60, now=NOW) is False
    (stored,) = raw.keys("*:j:*")
    digest = hashlib.sha256(long_key.encode()).hexdigest()
    assert stored.decode() == cache.redis_key(long_key)
    assert stored.decode().startswith(DEFAULT_PREFIX)
    assert stored.decode().endswith(":j:" + digest)
    assert cache.redis_key("a" * 64).endswith(":j:" + "a" * 64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": ""}, "prefix"),
        ({"prefix": "api{x}:"}, "hash tag"),
        ({"max_entries_per_owner": 0}, "max_entries_per_owner"),
        ({"acceptance_window": 0}, "acceptance_window"),
        ({"socket_timeout": 0}, "timeouts"),
        ({"max_connections": 0}, "max_connections"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisReplayCache.from_url("redis://127.0.0.1:1/0", **kwargs)


@pytest.mark.parametrize(
    ("key", "expires_at", "message"),
    [("", NOW + 1, "non-empty"), (KEY, float("inf"), "finite"), (KEY, float("nan"), "finite")],
)
def test_programmer_errors(
    cache: RedisReplayCache, key: str, expires_at: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cache.check_and_store(key, expires_at=expires_at, now=NOW)


def test_fails_closed_when_redis_is_down_and_recovers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    with RedisReplayCache.from_url(redis_server.url) as cache:
        assert cache.initialize() is True
        assert cache.check_and_store(KEY, expires_at=NOW + 60, now=NOW) is True
        redis_server.stop()
        with pytest.raises(ReplayStateUnavailable) as info:
            cache.check_and_store("ab" * 32, expires_at=NOW + 60, now=NOW)
        err = info.value
        assert (err.error, err.status_code, err.check) == (
            "temporarily_unavailable",
            503,
            "replay_state",
        )
        assert err.headers["Retry-After"] == "1"
        assert err.headers["Cache-Control"] == "no-store"
        assert f"127.0.0.1:{redis_server.port}" in str(err.details["server"])
        assert "ab" * 32 not in caplog.text
        assert cache.ping() is False
        # Restarted without persistence: state is empty, and the same pool works again —
        # but answers 503 for proofs whose window began before the loss (was: accepted).
        redis_server.start()
        assert cache.ping() is True
        with pytest.raises(ReplayStateUnavailable) as lost:
            cache.check_and_store(KEY, expires_at=NOW + 60, now=NOW)
        assert lost.value.details["check"] == "replay_state_lost"
        later = NOW + cache.acceptance_window
        assert cache.check_and_store("ab" * 32, expires_at=later + 60, now=later) is True
        assert cache.check_and_store("ab" * 32, expires_at=later + 60, now=later) is False


def test_recovers_on_a_stale_pooled_connection(redis_server: RedisServer) -> None:
    with RedisReplayCache.from_url(redis_server.url) as cache:
        assert cache.initialize() is True
        assert cache.check_and_store(KEY, expires_at=NOW + 60, now=NOW) is True
        redis_server.stop()
        redis_server.start()
        # The pooled connection died with the old server; one retry reconnects (and the
        # empty server is recognised as a state loss instead of accepting KEY again).
        with pytest.raises(ReplayStateUnavailable) as lost:
            cache.check_and_store(KEY, expires_at=NOW + 60, now=NOW)
        assert lost.value.details["check"] == "replay_state_lost"
        later = NOW + cache.acceptance_window
        assert cache.check_and_store(KEY, expires_at=later + 60, now=later) is True


def test_repr_and_errors_hold_no_password() -> None:
    cache = RedisReplayCache.from_url("redis://user:s3cret-pw@127.0.0.1:1/0", socket_timeout=0.2)
    with pytest.raises(ReplayStateUnavailable) as info:
        cache.check_and_store(KEY, expires_at=NOW + 60, now=NOW)
    for text in (repr(cache), str(info.value), info.value.explain(), repr(info.value.details)):
        assert "s3cret-pw" not in text
    cache.close()


N_PROOFS = 200
URL = "https://api.lab.invalid/items"


def _race(url: str | None, proofs: list[str], barrier: Any, results: Any, name: str) -> None:
    """One RS process: verify every captured proof; report the jtis it accepted."""
    from tokenlib.dpop import verify_proof
    from tokenlib.errors import ReplayDetected
    from tokenlib.replay import MemoryReplayCache

    cache: Any = RedisReplayCache.from_url(url) if url else MemoryReplayCache()
    barrier.wait(timeout=30)
    accepted = []
    for proof in proofs:
        with contextlib.suppress(ReplayDetected):
            accepted.append(
                verify_proof(proof, htm="GET", htu=URL, now=NOW, replay_cache=cache).jti
            )
    results.put((name, accepted))


def _run_two(url: str | None) -> list[list[str]]:
    from tokenlib.dpop import create_proof
    from tokenlib.jwk import generate_key

    key = generate_key("ES256")
    if url:
        with RedisReplayCache.from_url(url) as fresh:
            assert fresh.initialize() is True
    proofs = [create_proof(key, "GET", URL, now=NOW) for _ in range(N_PROOFS)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_race, args=(url, proofs, barrier, results, n)) for n in ("rs1", "rs2")
    ]
    for p in procs:
        p.start()
    out: list[list[str]] = []
    try:
        deadline = time.monotonic() + 60
        while len(out) < len(procs) and time.monotonic() < deadline:
            try:
                out.append(results.get(timeout=0.2)[1])
            except queue.Empty:
                if all(p.exitcode not in (None, 0) for p in procs):
                    break
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(out) == 2
    return out


@pytest.mark.slow
def test_two_processes_share_one_redis_accept_each_proof_once(redis_server: RedisServer) -> None:
    first, second = _run_two(redis_server.url)
    assert not set(first) & set(second)  # no proof accepted by both instances
    assert len(first) + len(second) == N_PROOFS


@pytest.mark.slow
def test_two_processes_with_memory_caches_accept_each_proof_twice() -> None:
    first, second = _run_two(None)
    assert sorted(first) == sorted(second)  # every proof accepted twice
    assert len(first) == N_PROOFS
