"""The bounded memo behind the per-request caches (keys, token and proof headers, JWKS)."""

from __future__ import annotations

import threading

import pytest

from tokenlib import AccessTokenCache, Issuer, clear_caches
from tokenlib._cache import BoundedCache, cache_info
from tokenlib.bearer import verify_access_token
from tokenlib.dpop import create_proof, verify_proof
from tokenlib.jwk import PrivateKey, jwk_thumbprint


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


def test_lru_mode_keeps_recently_read_entries() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2, lru=True)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    cache.discard("a")
    cache.discard("missing")
    assert len(cache) == 1
    assert cache.maxsize == 2


@pytest.mark.parametrize("maxsize", [0, -1, True, 1.5])
def test_maxsize_must_be_a_positive_int(maxsize: object) -> None:
    with pytest.raises(ValueError, match="maxsize"):
        BoundedCache(maxsize)  # type: ignore[arg-type]


def test_every_process_wide_cache_is_registered_bounded_and_cleared(
    keys: dict[str, PrivateKey], issuer: Issuer
) -> None:
    """Issue 11: the core's process-wide caches live in one registry with one clear."""
    key = keys["ES256"]
    url = "https://rs.example.com/api"
    proof = create_proof(key, "GET", url, now=1_700_000_000)
    verify_proof(proof, htm="GET", htu=url, now=1_700_000_000)
    token = issuer.issue(subject="a", client_id="c", audience="aud", now=1_700_000_000)
    verify_access_token(token, issuer=issuer.issuer, audience="aud", jwks=issuer.jwks(),
                        now=1_700_000_000)  # fmt: skip
    info = cache_info()
    assert set(info) >= {
        "dpop.proof_headers", "dpop.signing_headers", "htu.server_urls",
        "jwk.public_keys", "jws.headers", "jwks.sets",
    }  # fmt: skip
    assert all(0 <= size <= bound for size, bound in info.values())
    for name in ("dpop.proof_headers", "dpop.signing_headers", "htu.server_urls",
                 "jwk.public_keys", "jws.headers", "jwks.sets"):  # fmt: skip
        assert info[name][0] >= 1, name
    clear_caches()
    assert all(size == 0 for size, _ in cache_info().values())
    # clearing never changes an outcome: the same proof verifies again from scratch
    assert verify_proof(proof, htm="GET", htu=url, now=1_700_000_000).jkt == jwk_thumbprint(key)


def test_access_token_cache_is_a_bounded_lru() -> None:
    cache = AccessTokenCache(max_entries=2)
    a, b, c = (object() for _ in range(3))
    cache.put(b"a", (), a)  # type: ignore[arg-type]
    cache.put(b"b", (), b)  # type: ignore[arg-type]
    assert cache.get(b"a", ()) is a
    cache.put(b"c", (), c)  # type: ignore[arg-type]
    assert cache.get(b"b", ()) is None
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 2)
    with pytest.raises(ValueError, match="positive"):
        AccessTokenCache(max_entries=0)
