"""State loss in Redis must not reopen the replay window (issue 11, measured: 1,000 of
1,000 proofs accepted again after a restart without persistence).

The store keeps a generation marker without expiry per bucket; when it disappears (restart
empty, FLUSHALL, failover to a replica without the data) or counts fewer writes than a
client already saw (an older snapshot), every proof whose acceptance window started
before the loss is refused with 503 for one window; fresh proofs pass again after
``iat_future`` seconds (a client clock that far ahead could have made them before).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.integrations._redis_servers import ConfiguredRedis
from tests.lab.conftest import REDIS_SERVER
from tokenlib.dpop import DPoPPolicy, DPoPProof, check_proof, create_proof, replay_key, verify_proof
from tokenlib.errors import ReplayDetected, ReplayStateUnavailable
from tokenlib.integrations._redis_scripts import acceptance_window_for
from tokenlib.integrations.redis import (
    DEFAULT_ACCEPTANCE_WINDOW,
    RedisReplayCache,
)
from tokenlib.jwk import PrivateKey, generate_key
from tokenlib.server import ResourceServer

pytestmark = pytest.mark.redis

NOW = 1_700_000_000.0
URL = "https://api.lab.invalid/items"
IAT_FUTURE = DPoPPolicy.rfc().iat_future


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


@pytest.fixture
def cache(server: ConfiguredRedis) -> Iterator[RedisReplayCache]:
    with RedisReplayCache.from_url(server.url) as c:
        assert c.initialize() is True
        yield c


def _proofs(keys: list[PrivateKey], count: int, *, end: float) -> list[tuple[str, float]]:
    """``count`` proofs spread over the 290 s before ``end`` (inside iat_past), round robin
    over ``keys`` (so over many buckets)."""
    out = []
    for i in range(count):
        iat = end - 290.0 * i / count
        out.append((create_proof(keys[i % len(keys)], "GET", URL, now=iat), iat))
    return out


def _verify(proof: str, now: float, cache: RedisReplayCache) -> str:
    return verify_proof(proof, htm="GET", htu=URL, now=now, replay_cache=cache).jti


def _refused_as_lost(proof: str, now: float, cache: RedisReplayCache) -> int:
    with pytest.raises(ReplayStateUnavailable) as info:
        _verify(proof, now, cache)
    err = info.value
    assert err.status_code == 503
    assert err.details["check"] == "replay_state_lost"
    return int(err.headers["Retry-After"])


@pytest.mark.slow
def test_restart_empty_refuses_every_proof_of_the_old_window(
    server: ConfiguredRedis, cache: RedisReplayCache
) -> None:
    keys = [generate_key("ES256") for _ in range(20)]
    proofs = _proofs(keys, 1000, end=NOW)
    for proof, iat in proofs:
        _verify(proof, iat, cache)  # all 1,000 accepted once
    server.restart_empty()

    lost_at = NOW + 1
    refused = sum(1 for proof, _ in proofs if _refused_as_lost(proof, lost_at, cache) >= 1)
    assert refused == 1000  # was: 1,000 of 1,000 accepted again

    # A second RS instance that never saw the old generation refuses them as well.
    with RedisReplayCache.from_url(server.url) as other:
        assert all(_refused_as_lost(p, lost_at + 5, other) for p, _ in proofs[:50])

    # Fresh proofs: held back while a fast client clock could have made them before the
    # loss (Retry-After says for how long), accepted from lost_at + iat_future on.
    early = create_proof(keys[0], "GET", URL, now=lost_at + 30)
    assert _refused_as_lost(early, lost_at + 30, cache) == IAT_FUTURE - 30
    fresh_at = lost_at + IAT_FUTURE
    fresh = [create_proof(k, "GET", URL, now=fresh_at) for k in keys]
    assert len({_verify(p, fresh_at, cache) for p in fresh}) == len(keys)
    with pytest.raises(ReplayDetected):
        _verify(fresh[0], fresh_at + 1, cache)
    # One window after the loss the quarantine is over for everything still live.
    after = lost_at + DEFAULT_ACCEPTANCE_WINDOW
    assert _verify(create_proof(keys[1], "GET", URL, now=after), after, cache)


def test_flushall_is_a_state_loss(server: ConfiguredRedis, cache: RedisReplayCache) -> None:
    key = generate_key("ES256")
    proofs = _proofs([key], 10, end=NOW)
    for proof, iat in proofs:
        _verify(proof, iat, cache)
    raw = redis.Redis.from_url(server.url)
    raw.flushall()
    raw.close()
    assert all(_refused_as_lost(p, NOW + 1, cache) for p, _ in proofs)


def test_restore_of_an_older_snapshot_is_a_state_loss(
    server: ConfiguredRedis, cache: RedisReplayCache
) -> None:
    """The marker survives in the snapshot, but counts fewer writes than we saw."""
    key = generate_key("ES256")
    before = [(create_proof(key, "GET", URL, now=NOW - 200 + i), NOW - 200 + i) for i in range(10)]
    after = [(create_proof(key, "GET", URL, now=NOW - 50 + i), NOW - 50 + i) for i in range(10)]
    for proof, iat in before:
        _verify(proof, iat, cache)
    raw = redis.Redis.from_url(server.url)
    raw.save()  # dump.rdb holds the marker and the first ten entries
    raw.close()
    for proof, iat in after:
        _verify(proof, iat, cache)
    server.restart_empty()  # no save on shutdown: restarts from the older dump.rdb
    check = redis.Redis.from_url(server.url)
    assert check.dbsize() > 0
    check.close()
    # The first call notices the rollback; from then on the old window is refused.
    assert all(_refused_as_lost(p, NOW, cache) for p, _ in after)
    assert all(_refused_as_lost(p, NOW, cache) for p, _ in before)


def test_a_never_initialized_store_treats_first_use_as_a_loss(server: ConfiguredRedis) -> None:
    """Fail closed: a missing marker may be a loss; call initialize() on a new Redis."""
    key = generate_key("ES256")
    with RedisReplayCache.from_url(server.url) as cache:
        assert _refused_as_lost(create_proof(key, "GET", URL, now=NOW), NOW, cache) == IAT_FUTURE
        # Every bucket got the same loss time, not one per bucket at its first use.
        other = generate_key("ES256")
        later = NOW + IAT_FUTURE
        assert _verify(create_proof(other, "GET", URL, now=later), later, cache)
        raw = redis.Redis.from_url(server.url)
        markers = raw.keys(cache.prefix + "{*}:g")
        assert len(markers) == 256
        assert {raw.hget(m, "lost") for m in markers} == {repr(NOW).encode()}
        raw.close()
        assert cache.initialize() is False  # all markers exist: nothing to declare


def test_initialize_refuses_a_partial_loss(
    server: ConfiguredRedis, cache: RedisReplayCache
) -> None:
    raw = redis.Redis.from_url(server.url)
    raw.delete(cache.prefix + "{7f}:g")
    raw.close()
    with pytest.raises(ReplayStateUnavailable, match="255 of 256"):
        cache.initialize()


@pytest.mark.parametrize(
    ("policy", "window"),
    [
        (DPoPPolicy.rfc(), 420),
        (DPoPPolicy.fapi2(), 80),
        (DPoPPolicy.lenient(), 1200),
        (DPoPPolicy(iat_past_with_nonce=3600), 3720),
    ],
)
def test_acceptance_window_matches_the_policy(policy: DPoPPolicy, window: int) -> None:
    assert acceptance_window_for(policy) == window
    # The window covers the earliest moment verify_proof accepts a proof (iat - iat_future)
    # up to the expires_at it stores (iat + max(iat_past, with nonce) + iat_future).
    iat = NOW
    expires_at = iat + max(policy.iat_past, policy.iat_past_with_nonce or 0) + policy.iat_future
    assert expires_at - window == iat - policy.iat_future


def test_the_window_follows_the_verifying_policy(server: ConfiguredRedis) -> None:
    """FAPI 2.0 (iat 60 s old / 10 s ahead): honest proofs are held back 10 s, not 60."""
    fapi = DPoPPolicy.fapi2()
    key = generate_key("ES256")
    with RedisReplayCache.from_url(
        server.url, acceptance_window=acceptance_window_for(fapi)
    ) as cache:
        assert cache.initialize() is True
        server.restart_empty()

        def verify(at: float) -> str:
            proof = create_proof(key, "GET", URL, now=at)
            return verify_proof(
                proof, htm="GET", htu=URL, now=at, replay_cache=cache, policy=fapi
            ).jti

        with pytest.raises(ReplayStateUnavailable) as info:
            verify(NOW)
        assert info.value.headers["Retry-After"] == str(fapi.iat_future)
        with pytest.raises(ReplayStateUnavailable):
            verify(NOW + fapi.iat_future - 1)
        assert verify(NOW + fapi.iat_future)


def test_a_window_shorter_than_the_policy_would_reopen_replays(server: ConfiguredRedis) -> None:
    """Why a ResourceServer refuses a store whose ``acceptance_window`` is shorter than its
    policy's: under ±5 min ``iat`` (the MCP preset, 900 s) a store guarding the RFC
    policy's 420 s accepts, 150 s after a restart, a proof recorded before it; a store
    sized from the policy refuses it (RFC 9449 §11.1)."""
    wide = DPoPPolicy(iat_past=300, iat_future=300)
    old, other = generate_key("ES256"), generate_key("ES256")
    url_other = URL + "?other"
    outcomes = {}
    for window in (DEFAULT_ACCEPTANCE_WINDOW, wide.acceptance_window):
        proof = create_proof(old, "GET", URL, now=NOW - 100)
        with RedisReplayCache.from_url(server.url, acceptance_window=window) as cache:
            assert cache.initialize() is True
            checked = check_proof(proof, htm="GET", htu=URL, now=NOW, policy=wide)

            def record(result: DPoPProof, at: float, store: RedisReplayCache = cache) -> bool:
                return store.check_and_store(
                    replay_key(result.jkt, result.jti),
                    expires_at=result.replay_expires_at,
                    now=at,
                    owner=result.jkt,
                )

            assert record(checked, NOW) is True
            server.restart_empty()
            # Other traffic notices the loss first (the short store even lets this fresh
            # proof through at once; the policy-sized one holds it back 300 s).
            fresh = create_proof(other, "GET", url_other, now=NOW + 1)
            fresh_checked = check_proof(fresh, htm="GET", htu=url_other, now=NOW + 1, policy=wide)
            with contextlib.suppress(ReplayStateUnavailable):
                record(fresh_checked, NOW + 1)
            replayed = check_proof(proof, htm="GET", htu=URL, now=NOW + 150, policy=wide)
            try:
                outcomes[window] = "accepted" if record(replayed, NOW + 150) else "replay"
            except ReplayStateUnavailable:
                outcomes[window] = "refused"
        server.restart_empty()
    assert outcomes == {DEFAULT_ACCEPTANCE_WINDOW: "accepted", 900: "refused"}
    with pytest.raises(ValueError, match="acceptance_window=420 s"):
        ResourceServer(
            issuer="https://as.lab.invalid",
            audience="https://api.lab.invalid",
            jwks={"keys": []},
            policy=wide,
            replay_cache=RedisReplayCache.from_url(server.url),
        )
