"""The bounded memo behind the per-request caches (keys, token and proof headers, JWKS)."""

from __future__ import annotations

import threading

import pytest

from tokenlib._cache import BoundedCache


def test_oldest_entries_go_first_and_size_is_bounded() -> None:
    cache: BoundedCache[str, int] = BoundedCache(4)
    for i in range(10):
        cache.put(f"k{i}", i)
    assert len(cache) == 4
    assert [cache.get(f"k{i}") for i in range(10)] == [None] * 6 + [6, 7, 8, 9]


def test_put_replaces_and_clear_empties() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("a", 2)
    assert cache.get("a") == 2
    assert len(cache) == 1
    cache.clear()
    assert cache.get("a") is None


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        BoundedCache(0)


def test_concurrent_writers_keep_the_bound() -> None:
    cache: BoundedCache[int, int] = BoundedCache(50)

    def write(base: int) -> None:
        for i in range(2000):
            cache.put(base + i, i)

    threads = [threading.Thread(target=write, args=(n * 10_000,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 50
