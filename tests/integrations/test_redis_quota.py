"""Per-owner quotas in the Redis replay store (issue 11): one client flooding fresh proofs
gets 429 while every other client is served; the quota and the entry are one atomic step.
With ``noeviction`` and a full ``maxmemory`` the store refuses new proofs (503) and still
recognises every stored one as a replay — it never forgets an entry to make room."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.integrations._redis_servers import ConfiguredRedis
from tests.lab.conftest import REDIS_SERVER
from tokenlib.dpop import create_proof, verify_proof
from tokenlib.errors import ReplayDetected, ReplayQuotaExceeded, ReplayStateUnavailable
from tokenlib.integrations.redis import RedisReplayCache
from tokenlib.jwk import generate_key, jwk_thumbprint

pytestmark = pytest.mark.redis

NOW = 1_700_000_000.0
URL = "https://api.lab.invalid/items"


def _k(i: int, tag: str = "") -> str:
    return hashlib.sha256(f"{tag}{i}".encode()).hexdigest()


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[object]:
    if REDIS_SERVER is None:
        pytest.skip("no redis-server binary on PATH (apt-get install redis-server)")
    started: list[ConfiguredRedis] = []

    def start(*extra: str) -> ConfiguredRedis:
        server = ConfiguredRedis(binary=REDIS_SERVER, directory=tmp_path, extra=extra)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_redis: object) -> ConfiguredRedis:
    return start_redis("--maxmemory-policy", "noeviction")  # type: ignore[operator,no-any-return]


def _cache(server: ConfiguredRedis, **kwargs: object) -> RedisReplayCache:
    cache = RedisReplayCache.from_url(server.url, **kwargs)  # type: ignore[arg-type]
    cache.initialize()
    return cache


def test_owner_over_quota_gets_429_others_unaffected(server: ConfiguredRedis) -> None:
    with _cache(server, max_entries_per_owner=50) as cache:
        accepted, refused = 0, []
        for i in range(200):
            try:
                ok = cache.check_and_store(
                    _k(i, "a"), expires_at=NOW + 300 + i, now=NOW, owner="attacker"
                )
                accepted += ok
            except ReplayQuotaExceeded as exc:
                refused.append(exc)
        assert accepted == 50
        assert len(refused) == 150
        first = refused[0]
        assert (first.status_code, first.error) == (429, "invalid_dpop_proof")
        assert first.headers["Retry-After"] == "300"  # the oldest entry expires at NOW + 300
        assert first.details["check"] == "replay_quota"
        # Everyone else is served, and the attacker's stored proofs are still replays.
        for i in range(50):
            assert cache.check_and_store(_k(i, "b"), expires_at=NOW + 300, now=NOW, owner="b")
        assert (
            cache.check_and_store(_k(0, "a"), expires_at=NOW + 300, now=NOW, owner="attacker")
            is False
        )
        # Once the oldest entry has expired, one slot is free again.
        later = NOW + 300.5
        assert cache.check_and_store(
            _k(999, "a"), expires_at=later + 300, now=later, owner="attacker"
        )
        with pytest.raises(ReplayQuotaExceeded) as info:
            cache.check_and_store(_k(998, "a"), expires_at=later + 300, now=later, owner="attacker")
        assert info.value.retry_after == 1  # the next entry expires at NOW + 301
    raw = redis.Redis.from_url(server.url)
    assert len(raw.keys("*:j:*")) == 50 + 50 + 1  # refused proofs left nothing behind
    raw.close()


def test_quota_is_atomic_under_concurrency(server: ConfiguredRedis) -> None:
    """Eight threads race one owner's quota of 100: exactly 100 entries win."""
    with _cache(server, max_entries_per_owner=100, max_connections=16) as cache:
        wins: list[int] = []
        barrier = threading.Barrier(8)

        def worker(t: int) -> None:
            barrier.wait(timeout=10)
            n = 0
            for i in range(40):
                with contextlib.suppress(ReplayQuotaExceeded):
                    n += cache.check_and_store(
                        _k(i, f"t{t}"), expires_at=NOW + 300, now=NOW, owner="racer"
                    )
            wins.append(n)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=30)
        assert sum(wins) == 100


def test_no_owner_means_no_quota(server: ConfiguredRedis) -> None:
    with _cache(server, max_entries_per_owner=3) as cache:
        assert all(cache.check_and_store(_k(i), expires_at=NOW + 60, now=NOW) for i in range(10))
    with _cache(server, max_entries_per_owner=None, prefix="noquota:") as cache:
        assert all(
            cache.check_and_store(_k(i), expires_at=NOW + 60, now=NOW, owner="x") for i in range(10)
        )


@pytest.mark.slow
def test_dpop_flood_from_one_key_leaves_other_clients_served(server: ConfiguredRedis) -> None:
    """The issue's flood, bounded and on loopback: one key sends 400 fresh proofs."""
    attacker, victim = generate_key("ES256"), generate_key("ES256")
    with _cache(server, max_entries_per_owner=100) as cache:
        outcomes = {"ok": 0, "429": 0}
        retry_after: set[str] = set()
        for i in range(400):
            proof = create_proof(attacker, "GET", URL, now=NOW + i * 0.01)
            try:
                verify_proof(proof, htm="GET", htu=URL, now=NOW + i * 0.01, replay_cache=cache)
                outcomes["ok"] += 1
            except ReplayQuotaExceeded as exc:
                outcomes["429"] += 1
                retry_after.add(exc.headers["Retry-After"])
        assert outcomes == {"ok": 100, "429": 300}
        # Until the oldest of the 100 entries expires (NOW + 360; the flood lasts 4 s).
        assert {int(r) for r in retry_after} <= set(range(356, 360))
        served = 0
        for i in range(50):
            proof = create_proof(victim, "GET", URL, now=NOW + 5 + i)
            served += bool(
                verify_proof(proof, htm="GET", htu=URL, now=NOW + 5 + i, replay_cache=cache).jti
            )
        assert served == 50
        proof = create_proof(victim, "GET", URL, now=NOW + 100)
        verify_proof(proof, htm="GET", htu=URL, now=NOW + 100, replay_cache=cache)
        with pytest.raises(ReplayDetected):
            verify_proof(proof, htm="GET", htu=URL, now=NOW + 101, replay_cache=cache)
    raw = redis.Redis.from_url(server.url)
    owner_sets = raw.keys("*:o:*")
    sizes = sorted(raw.zcard(k) for k in owner_sets)
    assert sizes == [51, 100]
    thumb = jwk_thumbprint(attacker)
    tag = cache.redis_key("x", owner=thumb).split(":j:")[0]
    owner_set = f"{tag}:o:{hashlib.sha256(thumb.encode()).hexdigest()[:32]}"
    assert raw.zcard(owner_set) == 100
    raw.close()


@pytest.mark.slow
def test_noeviction_with_full_memory_refuses_new_proofs_and_keeps_old_ones(
    start_redis: object,
) -> None:
    server: ConfiguredRedis = start_redis(  # type: ignore[operator]
        "--maxmemory-policy", "noeviction", "--maxmemory", "3mb"
    )
    stored: list[str] = []
    with _cache(server, max_entries_per_owner=None) as cache:
        error = None
        for i in range(50_000):
            key = _k(i, "fill")
            try:
                assert cache.check_and_store(key, expires_at=NOW + 300, now=NOW, owner=f"o{i}")
            except ReplayStateUnavailable as exc:
                error = exc
                break
            stored.append(key)
        assert error is not None, "maxmemory was never reached"
        assert error.status_code == 503
        assert error.details["error"] == "OutOfMemoryError"
        # Full: nothing new gets in, but every stored proof is still recognised.
        with pytest.raises(ReplayStateUnavailable):
            cache.check_and_store(_k(0, "new"), expires_at=NOW + 300, now=NOW, owner="fresh")
        for i in range(0, len(stored), max(1, len(stored) // 200)):
            assert (
                cache.check_and_store(stored[i], expires_at=NOW + 300, now=NOW, owner=f"o{i}")
                is False
            )
    raw = redis.Redis.from_url(server.url)
    assert len(raw.keys("*:j:*")) == len(stored)  # no entry lost, no half-written entry
    info = raw.info("stats")
    assert int(info["evicted_keys"]) == 0
    raw.close()


@pytest.mark.slow
def test_volatile_lru_flood_evicts_replay_entries_which_is_why_it_is_refused(
    start_redis: object,
) -> None:
    """The issue's measurement, reproduced with the check switched off: under
    ``volatile-lru`` a flood evicts earlier entries and their replays are accepted."""
    server: ConfiguredRedis = start_redis(  # type: ignore[operator]
        "--maxmemory-policy", "volatile-lru", "--maxmemory", "3mb"
    )
    early = [_k(i, "early") for i in range(500)]
    with _cache(server, max_entries_per_owner=None, check_eviction_policy=False) as unsafe:
        for key in early:
            assert unsafe.check_and_store(key, expires_at=NOW + 300, now=NOW, owner="victim")
        for i in range(15_000):
            unsafe.check_and_store(_k(i, "flood"), expires_at=NOW + 300, now=NOW, owner=f"f{i}")
        replays_accepted = sum(
            unsafe.check_and_store(key, expires_at=NOW + 300, now=NOW, owner="victim")
            for key in early
        )
    assert replays_accepted > 0  # the failure the policy check prevents
    raw = redis.Redis.from_url(server.url)
    assert int(raw.info("stats")["evicted_keys"]) > 0
    raw.close()
    with (
        RedisReplayCache.from_url(server.url) as checked,
        pytest.raises(ReplayStateUnavailable, match="volatile-lru"),
    ):
        checked.check_and_store(early[0], expires_at=NOW + 300, now=NOW, owner="victim")
