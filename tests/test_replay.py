"""tokenlib.replay: atomic, bounded, fail-closed jti replay cache (RFC 9449 §11.1)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tokenlib.dpop import create_proof, verify_proof
from tokenlib.errors import ReplayDetected, ReplayStateUnavailable
from tokenlib.jwk import PrivateKey
from tokenlib.replay import MemoryReplayCache, ReplayCache

NOW = 1_700_000_000.0
HTU = "https://rs.example.com/api"


def test_new_then_replay_then_expired() -> None:
    cache = MemoryReplayCache()
    assert cache.check_and_store("a", expires_at=NOW + 10, now=NOW) is True
    assert cache.check_and_store("a", expires_at=NOW + 10, now=NOW + 9.9) is False
    assert cache.check_and_store("a", expires_at=NOW + 30, now=NOW + 10) is True
    assert cache.check_and_store("a", expires_at=NOW + 40, now=NOW + 29) is False
    assert len(cache) == 1


def test_is_a_replay_cache() -> None:
    assert isinstance(MemoryReplayCache(), ReplayCache)


def test_full_cache_evicts_expired_entries_first() -> None:
    cache = MemoryReplayCache(max_entries=3)
    cache.check_and_store("old", expires_at=NOW + 1, now=NOW)
    cache.check_and_store("live1", expires_at=NOW + 100, now=NOW)
    cache.check_and_store("live2", expires_at=NOW + 100, now=NOW)
    assert cache.check_and_store("new", expires_at=NOW + 100, now=NOW + 2) is True
    assert len(cache) == 3
    # live entries were kept: they are still replays
    assert cache.check_and_store("live1", expires_at=NOW + 100, now=NOW + 3) is False
    assert cache.check_and_store("live2", expires_at=NOW + 100, now=NOW + 3) is False


def test_full_cache_of_live_entries_fails_closed() -> None:
    cache = MemoryReplayCache(max_entries=2)
    cache.check_and_store("a", expires_at=NOW + 100, now=NOW)
    cache.check_and_store("b", expires_at=NOW + 100, now=NOW)
    with pytest.raises(ReplayStateUnavailable) as info:
        cache.check_and_store("c", expires_at=NOW + 100, now=NOW)
    assert info.value.status_code == 503
    assert info.value.check == "replay_cache"
    assert "Retry-After" in info.value.headers
    # a known key is still answered (a replay), never forgotten
    assert cache.check_and_store("a", expires_at=NOW + 100, now=NOW) is False
    # once entries expire there is room again
    assert cache.check_and_store("c", expires_at=NOW + 200, now=NOW + 100) is True


def test_verify_proof_fails_closed_when_cache_is_full(es256_key: PrivateKey) -> None:
    cache = MemoryReplayCache(max_entries=1)
    verify_proof(
        create_proof(es256_key, "GET", HTU, now=NOW),
        htm="GET",
        htu=HTU,
        now=NOW,
        replay_cache=cache,
    )
    with pytest.raises(ReplayStateUnavailable):
        verify_proof(
            create_proof(es256_key, "GET", HTU, now=NOW),
            htm="GET",
            htu=HTU,
            now=NOW,
            replay_cache=cache,
        )


def test_memory_stays_bounded_under_churn() -> None:
    cache = MemoryReplayCache(max_entries=50)
    for i in range(5000):
        t = NOW + i
        assert cache.check_and_store(f"k{i}", expires_at=t + 10, now=t) is True
    assert len(cache) <= 50
    assert len(cache._heap) <= 2 * 50 + 64 + cache._SWEEP_PER_CALL


def test_rewritten_keys_do_not_grow_the_heap() -> None:
    cache = MemoryReplayCache(max_entries=10)
    for i in range(2000):
        t = NOW + 2 * i
        assert cache.check_and_store("same", expires_at=t + 1, now=t) is True
    assert len(cache) == 1
    assert len(cache._heap) <= 2 + 64 + cache._SWEEP_PER_CALL


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"max_entries": 0}, ValueError),
        ({"max_entries": True}, ValueError),
        ({"max_entries": 1.5}, ValueError),
    ],
)
def test_bad_configuration(kwargs: dict[str, object], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        MemoryReplayCache(**kwargs)  # type: ignore[arg-type]


def test_bad_arguments() -> None:
    cache = MemoryReplayCache()
    with pytest.raises(TypeError):
        cache.check_and_store(b"k", expires_at=NOW, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        cache.check_and_store("k", expires_at=float("nan"), now=NOW)


def test_clear_and_repr() -> None:
    cache = MemoryReplayCache(max_entries=5)
    cache.check_and_store("k", expires_at=NOW + 5, now=NOW)
    assert "entries=1" in repr(cache)
    cache.clear()
    assert len(cache) == 0
    assert cache.check_and_store("k", expires_at=NOW + 5, now=NOW) is True


def test_concurrent_check_and_store_accepts_exactly_one() -> None:
    cache = MemoryReplayCache()
    barrier = threading.Barrier(16)

    def attempt(_: int) -> bool:
        barrier.wait()
        return cache.check_and_store("same-key", expires_at=NOW + 60, now=NOW)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(attempt, range(16)))
    assert results.count(True) == 1


def test_many_threads_presenting_the_same_proof_exactly_one_accepted(es256_key: PrivateKey) -> None:
    cache = MemoryReplayCache()
    proof = create_proof(es256_key, "GET", HTU, now=NOW)
    threads = 24
    barrier = threading.Barrier(threads)

    def present(_: int) -> str:
        barrier.wait()
        try:
            verify_proof(proof, htm="GET", htu=HTU, now=NOW, replay_cache=cache)
        except ReplayDetected:
            return "replay"
        return "accepted"

    with ThreadPoolExecutor(max_workers=threads) as pool:
        outcomes = list(pool.map(present, range(threads)))
    assert outcomes.count("accepted") == 1
    assert outcomes.count("replay") == threads - 1
