"""tokenlib.replay: atomic, bounded, fail-closed jti replay cache (RFC 9449 §11.1)."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenlib.dpop import DPoPPolicy, create_proof, verify_proof
from tokenlib.errors import ReplayDetected, ReplayQuotaExceeded, ReplayStateUnavailable
from tokenlib.jwk import PrivateKey
from tokenlib.replay import (
    DEFAULT_MAX_ENTRIES,
    DEFAULT_MAX_PER_OWNER,
    NO_REPLAY_CHECK,
    AsyncReplayCache,
    MemoryReplayCache,
    NoReplayCheck,
    ReplayCache,
    check_acceptance_window,
    is_async_replay_cache,
)

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
        ({"max_per_owner": 0}, ValueError),
        ({"max_per_owner": True}, ValueError),
        ({"max_per_owner": 2.0}, ValueError),
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


# ------------------------------------------------------------------ per-owner quotas


def test_defaults_are_documented_values() -> None:
    cache = MemoryReplayCache()
    assert (cache.max_entries, cache.max_per_owner) == (DEFAULT_MAX_ENTRIES, DEFAULT_MAX_PER_OWNER)
    assert "max_per_owner=5000" in repr(cache)


def test_owner_over_quota_is_refused_with_retry_after_others_unaffected() -> None:
    cache = MemoryReplayCache(max_entries=100, max_per_owner=3)
    cache.check_and_store("a1", expires_at=NOW + 40.5, now=NOW, owner="attacker")
    cache.check_and_store("a2", expires_at=NOW + 20.2, now=NOW, owner="attacker")
    cache.check_and_store("a3", expires_at=NOW + 90, now=NOW, owner="attacker")
    with pytest.raises(ReplayQuotaExceeded) as info:
        cache.check_and_store("a4", expires_at=NOW + 90, now=NOW + 1, owner="attacker")
    err = info.value
    assert err.status_code == 429
    # the owner's earliest entry expires at NOW + 20.2: 19.2 s from NOW + 1, rounded up
    assert err.retry_after == 20
    assert err.headers["Retry-After"] == "20"
    assert err.check == "replay_quota"
    assert err.details["quota"] == 3
    assert len(cache) == 3  # nothing stored for the refused key
    # another owner, and unowned entries, are unaffected
    assert cache.check_and_store("b1", expires_at=NOW + 90, now=NOW + 1, owner="other") is True
    assert cache.check_and_store("n1", expires_at=NOW + 90, now=NOW + 1) is True
    # a replay of the owner's own key is still answered as a replay, not a quota error
    assert cache.check_and_store("a1", expires_at=NOW + 90, now=NOW + 1, owner="attacker") is False
    # once its earliest entry expires the owner has room again
    assert cache.check_and_store("a4", expires_at=NOW + 90, now=NOW + 21, owner="attacker") is True
    assert cache.owner_count("attacker", now=NOW + 21) == 3


def test_quota_off_with_none() -> None:
    cache = MemoryReplayCache(max_entries=10, max_per_owner=None)
    for i in range(10):
        assert cache.check_and_store(f"k{i}", expires_at=NOW + 9, now=NOW, owner="o") is True
    with pytest.raises(ReplayStateUnavailable):
        cache.check_and_store("k10", expires_at=NOW + 9, now=NOW, owner="o")


def test_flood_by_one_owner_never_fills_the_store_for_others() -> None:
    """Issue 11: one client with one valid token filled the default store (100,000
    proofs) and every other client got 503. Bounded count: quota 50, store 1,000."""
    cache = MemoryReplayCache(max_entries=1_000, max_per_owner=50)
    accepted = refused = 0
    for i in range(2_000):
        try:
            cache.check_and_store(f"x{i}", expires_at=NOW + 360, now=NOW, owner="attacker")
            accepted += 1
        except ReplayQuotaExceeded:
            refused += 1
    assert (accepted, refused) == (50, 1_950)
    assert len(cache) == 50
    for j in range(20):
        assert cache.check_and_store(f"ok{j}", expires_at=NOW + 360, now=NOW, owner=f"c{j}")


def test_owner_bookkeeping_is_bounded_across_many_owners() -> None:
    """Every new key is a new owner (an attacker's fresh keys): once their entries
    expire, nothing is kept per owner."""
    cache = MemoryReplayCache(max_entries=100, max_per_owner=5)
    for i in range(5_000):
        t = NOW + i
        cache.check_and_store(f"k{i}", expires_at=t + 10, now=t, owner=f"owner{i}")
    assert len(cache) <= 100
    assert len(cache._owners) <= 100
    assert sum(len(h) for h in cache._owners.values()) <= 100


def test_rewritten_key_by_another_owner_releases_the_first_owners_slot() -> None:
    cache = MemoryReplayCache(max_entries=10, max_per_owner=1)
    cache.check_and_store("k", expires_at=NOW + 5, now=NOW, owner="a")
    assert cache.check_and_store("k", expires_at=NOW + 50, now=NOW + 6, owner="b") is True
    assert cache.owner_count("a", now=NOW + 6) == 0
    assert cache.check_and_store("k2", expires_at=NOW + 50, now=NOW + 6, owner="a") is True


def test_owner_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="owner"):
        MemoryReplayCache().check_and_store("k", expires_at=NOW, now=NOW, owner=5)  # type: ignore[arg-type]


def test_concurrent_owner_quota_is_exact() -> None:
    cache = MemoryReplayCache(max_entries=1_000, max_per_owner=10)
    barrier = threading.Barrier(8)

    def flood(worker: int) -> int:
        barrier.wait()
        ok = 0
        for i in range(50):
            try:
                cache.check_and_store(f"{worker}-{i}", expires_at=NOW + 60, now=NOW, owner="o")
                ok += 1
            except ReplayQuotaExceeded:
                pass
        return ok

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(flood, range(8))) == 10


def test_verify_proof_passes_the_proof_key_as_owner(es256_key: PrivateKey) -> None:
    cache = MemoryReplayCache(max_entries=100, max_per_owner=2)
    for _ in range(2):
        verify_proof(create_proof(es256_key, "GET", HTU, now=NOW), htm="GET", htu=HTU, now=NOW,
                     replay_cache=cache)  # fmt: skip
    with pytest.raises(ReplayQuotaExceeded):
        verify_proof(create_proof(es256_key, "GET", HTU, now=NOW), htm="GET", htu=HTU, now=NOW,
                     replay_cache=cache)  # fmt: skip


# ------------------------------------------------------- protocols and NO_REPLAY_CHECK


class _AsyncCache:
    async def check_and_store(
        self, key: str, *, expires_at: float, now: float, owner: str | None = None
    ) -> bool:
        return True


def test_async_protocol_and_detection() -> None:
    assert isinstance(_AsyncCache(), AsyncReplayCache)
    assert is_async_replay_cache(_AsyncCache())
    assert not is_async_replay_cache(MemoryReplayCache())
    assert not is_async_replay_cache(object())


def test_no_replay_check_is_a_singleton_with_a_readable_repr() -> None:
    import copy
    import pickle

    assert NoReplayCheck() is NO_REPLAY_CHECK
    assert repr(NO_REPLAY_CHECK) == "NO_REPLAY_CHECK"
    assert copy.deepcopy(NO_REPLAY_CHECK) is NO_REPLAY_CHECK
    assert pickle.loads(pickle.dumps(NO_REPLAY_CHECK)) is NO_REPLAY_CHECK  # noqa: S301


def test_verify_proof_replay_cache_meanings(es256_key: PrivateKey) -> None:
    proof = create_proof(es256_key, "GET", HTU, now=NOW)
    # omitted and NO_REPLAY_CHECK: a stateless check, the same proof passes twice
    verify_proof(proof, htm="GET", htu=HTU, now=NOW)
    verify_proof(proof, htm="GET", htu=HTU, now=NOW, replay_cache=NO_REPLAY_CHECK)
    # None never silently means "off"
    with pytest.raises(TypeError, match="NO_REPLAY_CHECK"):
        verify_proof(proof, htm="GET", htu=HTU, now=NOW, replay_cache=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="synchronous"):
        verify_proof(proof, htm="GET", htu=HTU, now=NOW, replay_cache=_AsyncCache())  # type: ignore[arg-type]


# ------------------------------------------------------------- model-based property


_OPS = st.lists(
    st.tuples(
        st.integers(0, 39),  # key
        st.sampled_from(["a", "b", "c", None]),  # owner
        st.integers(0, 3),  # time step (never backwards)
        st.integers(1, 8),  # ttl
    ),
    max_size=200,
)


@settings(max_examples=300)
@given(
    ops=_OPS,
    max_entries=st.integers(1, 30),
    quota=st.one_of(st.none(), st.integers(1, 6)),
    sweep=st.sampled_from([0, 1, 4]),
)
def test_memory_cache_matches_a_reference_model(
    ops: list[tuple[int, str | None, int, int]], max_entries: int, quota: int | None, sweep: int
) -> None:
    """Every answer (new, replay, quota with its Retry-After, full) equals that of a naive
    model that scans all live entries, whatever the interleaving of owners and expiries
    (``sweep`` varies how lazily expired entries are dropped, an internal detail)."""
    cache = MemoryReplayCache(max_entries=max_entries, max_per_owner=quota)
    cache._SWEEP_PER_CALL = sweep
    model: dict[str, tuple[float, str | None]] = {}
    now = NOW
    for key_id, owner, step, ttl in ops:
        now += step
        key = f"k{key_id}"
        expires_at = now + ttl
        live = {k: v for k, v in model.items() if v[0] > now}
        if key in live:
            expected: object = False
        elif (
            quota is not None
            and owner is not None
            and (owned := sorted(e for e, o in live.values() if o == owner))
            and len(owned) >= quota
        ):
            expected = ("quota", max(1, math.ceil(owned[0] - now)))
        elif len(live) >= max_entries:
            expected = "full"
        else:
            expected = True
        try:
            got: object = cache.check_and_store(key, expires_at=expires_at, now=now, owner=owner)
        except ReplayQuotaExceeded as err:
            got = ("quota", err.retry_after)
        except ReplayStateUnavailable:
            got = "full"
        assert got == expected, (key, owner, now)
        if expected is True:
            model = dict(live)
            model[key] = (expires_at, owner)
        assert len(cache) <= max_entries


def test_owner_whose_entries_all_expired_is_counted_again_from_its_next_entry() -> None:
    """Regression: pruning an owner's emptied heap must not leave its next entry
    untracked (which let it hold one proof over its quota per expiry cycle)."""
    cache = MemoryReplayCache(max_entries=100, max_per_owner=1)
    for i in range(20):  # expire first, so the per-call sweep does not reach k1
        cache.check_and_store(f"other{i}", expires_at=NOW + 1, now=NOW)
    cache.check_and_store("k1", expires_at=NOW + 5, now=NOW, owner="o")
    assert cache.check_and_store("k2", expires_at=NOW + 50, now=NOW + 6, owner="o") is True
    assert cache.owner_count("o", now=NOW + 6) == 1
    with pytest.raises(ReplayQuotaExceeded):
        cache.check_and_store("k3", expires_at=NOW + 50, now=NOW + 6, owner="o")


class _WindowedStore:
    """A shared store that declares how long it refuses pre-loss proofs after a loss."""

    def __init__(self, acceptance_window: float) -> None:
        self.acceptance_window = acceptance_window
        self.seen: set[str] = set()

    def check_and_store(self, key: str, *, expires_at: float, now: float, owner: str) -> bool:
        fresh = key not in self.seen
        self.seen.add(key)
        return fresh


@pytest.mark.parametrize(
    ("policy", "window", "refused"),
    [
        (DPoPPolicy.rfc(), 420, False),
        (DPoPPolicy.rfc(), 419, True),
        (DPoPPolicy.fapi2(), 80, False),
        (DPoPPolicy.fapi2(), 420, False),  # longer than needed is only more careful
        (DPoPPolicy.lenient(), 420, True),  # 600 + 2 × 300 = 1200 s
        (DPoPPolicy(iat_past=300, iat_future=300), 420, True),  # the MCP preset: 900 s
        (DPoPPolicy(iat_past=300, iat_future=300), 900, False),
        (DPoPPolicy(iat_past_with_nonce=3600), 420, True),  # 3600 + 120 s
        (DPoPPolicy(iat_past_with_nonce=3600), 3720.0, False),
    ],
)
def test_a_store_must_cover_the_policys_acceptance_window(
    policy: DPoPPolicy, window: float, refused: bool
) -> None:
    """RFC 9449 §11.1: a store that forgets its state must refuse pre-loss proofs for as
    long as the policy accepts a proof, or a proof used before the loss is replayable."""
    store = _WindowedStore(window)
    if not refused:
        check_acceptance_window(store, policy.acceptance_window, server="test")
        return
    with pytest.raises(ValueError, match=r"acceptance_window=.* accepts a proof for") as info:
        check_acceptance_window(store, policy.acceptance_window, server="ResourceServer")
    assert str(info.value).startswith("ResourceServer: ")
    assert f"for {policy.acceptance_window} s" in str(info.value)


@pytest.mark.parametrize("store", [MemoryReplayCache(), _AsyncCache(), object()])
def test_stores_without_a_declared_window_pass(store: object) -> None:
    check_acceptance_window(store, DPoPPolicy.lenient().acceptance_window, server="test")


def test_verify_proof_refuses_a_store_shorter_than_its_policy(es256_key: PrivateKey) -> None:
    lenient = DPoPPolicy.lenient()
    proof = create_proof(es256_key, "GET", "https://rs.example/a")
    with pytest.raises(ValueError, match="verify_proof: the replay store"):
        verify_proof(
            proof,
            htm="GET",
            htu="https://rs.example/a",
            replay_cache=_WindowedStore(420),
            policy=lenient,
        )
    store = _WindowedStore(lenient.acceptance_window)
    assert verify_proof(
        proof, htm="GET", htu="https://rs.example/a", replay_cache=store, policy=lenient
    ).jti
