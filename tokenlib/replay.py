"""Replay caches for DPoP ``jti`` values (RFC 9449 §11.1).

A :class:`ReplayCache` records a key until it expires and says, atomically, whether it
was new; an :class:`AsyncReplayCache` does the same for asyncio servers (e.g. the Redis
store's asyncio client). Verification fails closed: a cache that cannot answer raises
:class:`~tokenlib.errors.ReplayStateUnavailable` instead of letting a possible replay in.
Keys are fixed-length hex hashes (see :func:`tokenlib.dpop.replay_key`), so a huge
``jti`` cannot bloat memory.

Owners and quotas: every entry may name an ``owner`` — the proof key's ``jkt`` at a
resource server, the authenticated ``client_id`` at a token endpoint. A store that
enforces quotas refuses an owner's new entry once it holds ``max_per_owner`` live entries
(:class:`~tokenlib.errors.ReplayQuotaExceeded`, HTTP 429 with ``Retry-After``), so one
client cannot fill the store and lock every other client out.

``NO_REPLAY_CHECK`` is the explicit way to say "do not check replays" to
:func:`tokenlib.dpop.verify_proof` (a stateless check, e.g. in the CLI); servers refuse it.
"""

from __future__ import annotations

import heapq
import inspect
import math
import threading
from typing import Final, Protocol, final, runtime_checkable

from tokenlib.errors import ReplayQuotaExceeded, ReplayStateUnavailable

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_MAX_PER_OWNER",
    "NO_REPLAY_CHECK",
    "AsyncReplayCache",
    "MemoryReplayCache",
    "NoReplayCheck",
    "ReplayCache",
    "check_acceptance_window",
    "is_async_replay_cache",
]

#: Live entries a :class:`MemoryReplayCache` holds by default (≈ 30 MB worst case).
DEFAULT_MAX_ENTRIES: Final = 100_000
#: Live entries one owner may hold by default: 5 % of the default store, i.e. about
#: 13.9 proofs per second sustained per key over the default 360 s window.
DEFAULT_MAX_PER_OWNER: Final = 5_000


@runtime_checkable
class ReplayCache(Protocol):
    """Atomic check-and-set store of recently seen proof keys.

    ``check_and_store`` records ``key`` until ``expires_at`` and returns True if it was
    not present (or had expired), False if it is a replay. It raises
    :class:`~tokenlib.errors.ReplayStateUnavailable` when it cannot decide, and
    :class:`~tokenlib.errors.ReplayQuotaExceeded` when ``owner`` (the proof key's ``jkt``
    or the client id) already holds its quota of live entries. A shared
    implementation (e.g. Redis ``SET key 1 NX PXAT expires_at``) lets several server
    instances refuse each other's replays.
    """

    def check_and_store(
        self, key: str, *, expires_at: float, now: float, owner: str | None = None
    ) -> bool: ...


@runtime_checkable
class AsyncReplayCache(Protocol):
    """:class:`ReplayCache` for asyncio servers: the same contract, awaited.

    Used by :meth:`tokenlib.server.ResourceServer.averify`. ``isinstance`` cannot tell
    this protocol from :class:`ReplayCache` (both have ``check_and_store``); tokenlib
    tells them apart with :func:`is_async_replay_cache`.
    """

    async def check_and_store(
        self, key: str, *, expires_at: float, now: float, owner: str | None = None
    ) -> bool: ...


def is_async_replay_cache(cache: object) -> bool:
    """True if ``cache.check_and_store`` is a coroutine function (an
    :class:`AsyncReplayCache`)."""
    method = getattr(cache, "check_and_store", None)
    return method is not None and inspect.iscoroutinefunction(method)


@final
class NoReplayCheck:
    """The type of :data:`NO_REPLAY_CHECK` (a singleton)."""

    _instance: NoReplayCheck | None = None

    def __new__(cls) -> NoReplayCheck:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_REPLAY_CHECK"

    def __reduce__(self) -> str:
        return "NO_REPLAY_CHECK"


#: Pass as ``replay_cache`` to :func:`tokenlib.dpop.verify_proof` to skip the replay
#: check on purpose (RFC 9449 §11.1 then rests on the caller).
NO_REPLAY_CHECK: Final = NoReplayCheck()


class MemoryReplayCache:
    """A thread-safe in-process :class:`ReplayCache` with hard memory and per-owner bounds.

    A dict maps key to expiry; a min-heap of ``(expiry, key)`` finds expired entries in
    O(log n). Expired entries are dropped a few at a time on every call (amortised O(1)
    work per call) and all at once when the cache is full. If the cache is still full
    after that, the new key is *refused* with ``ReplayStateUnavailable`` (HTTP 503):
    forgetting a live entry could let a replay through, so it never does.

    ``max_per_owner`` (default :data:`DEFAULT_MAX_PER_OWNER`; ``None`` turns quotas off):
    an entry stored with ``owner=`` counts against that owner; once the owner holds that
    many live entries its *new* keys are refused with
    :class:`~tokenlib.errors.ReplayQuotaExceeded` (HTTP 429, ``Retry-After`` = seconds
    until the owner's earliest entry expires). Replays are still answered as replays.
    Each owner keeps a min-heap of its entries' expiries, pruned lazily (amortised
    O(log n) per call); owners without live entries are forgotten, so memory stays
    bounded by ``max_entries`` whatever the number of owners.

    Only protects one process: behind a load balancer use a shared store.
    """

    _SWEEP_PER_CALL = 4

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        *,
        max_per_owner: int | None = DEFAULT_MAX_PER_OWNER,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError("max_entries must be a positive int")
        if max_per_owner is not None and (
            isinstance(max_per_owner, bool)
            or not isinstance(max_per_owner, int)
            or max_per_owner < 1
        ):
            raise ValueError("max_per_owner must be None or a positive int")
        self.max_entries = max_entries
        self.max_per_owner = max_per_owner
        self._lock = threading.Lock()
        # key -> (expiry, owner)
        self._expiry: dict[str, tuple[float, str | None]] = {}
        self._heap: list[tuple[float, str]] = []
        # owner -> min-heap of its entries' expiries (stale items pruned lazily)
        self._owners: dict[str, list[float]] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def __repr__(self) -> str:
        return (
            f"MemoryReplayCache(entries={len(self)}, max_entries={self.max_entries}, "
            f"max_per_owner={self.max_per_owner})"
        )

    def owner_count(self, owner: str, *, now: float) -> int:
        """Live entries ``owner`` holds at ``now`` (for monitoring and tests)."""
        with self._lock:
            heap = self._owners.get(owner)
            if heap is None:
                return 0
            self._prune_owner(owner, heap, now)
            return len(heap)

    def check_and_store(
        self, key: str, *, expires_at: float, now: float, owner: str | None = None
    ) -> bool:
        """Record ``key`` until ``expires_at``; True if new, False if a live replay."""
        if not isinstance(key, str):
            raise TypeError("key must be a str")
        if owner is not None and not isinstance(owner, str):
            raise TypeError("owner must be a str or None")
        if not (math.isfinite(expires_at) and math.isfinite(now)):
            raise ValueError("expires_at and now must be finite")
        with self._lock:
            self._sweep(now, self._SWEEP_PER_CALL)
            current = self._expiry.get(key)
            if current is not None:
                if current[0] > now:
                    return False
                previous_owner = current[1]
                if previous_owner is not None and previous_owner in self._owners:
                    self._prune_owner(previous_owner, self._owners[previous_owner], now)
            owner_heap: list[float] | None = None
            if owner is not None and self.max_per_owner is not None:
                owner_heap = self._owners.get(owner)
                if owner_heap is not None:
                    self._prune_owner(owner, owner_heap, now)
                    if len(owner_heap) >= self.max_per_owner:
                        raise ReplayQuotaExceeded(
                            "this key or client has too many live DPoP proofs in the replay "
                            "store; retry later",
                            retry_after=math.ceil(owner_heap[0] - now),
                            details={
                                "check": "replay_quota",
                                "owner_entries": len(owner_heap),
                                "quota": self.max_per_owner,
                                "rfc": "RFC 9449 §11.1",
                            },
                        )
            if current is None and len(self._expiry) >= self.max_entries:
                self._sweep(now, None)
                if len(self._expiry) >= self.max_entries:
                    raise ReplayStateUnavailable(
                        "the replay cache is full of live entries; refusing rather than "
                        "risking an undetected replay",
                        details={"check": "replay_cache", "entries": len(self._expiry)},
                    )
            self._expiry[key] = (expires_at, owner)
            heapq.heappush(self._heap, (expires_at, key))
            if owner is not None and self.max_per_owner is not None:
                # Looked up again: pruning above may have dropped an emptied heap.
                owner_heap = self._owners.get(owner)
                if owner_heap is None:
                    owner_heap = self._owners[owner] = []
                heapq.heappush(owner_heap, expires_at)
            return True

    def _prune_owner(self, owner: str, heap: list[float], now: float) -> None:
        # An owner's expiry at or before ``now`` belongs to an entry that is expired
        # (entries are only replaced once expired), so it no longer counts.
        while heap and heap[0] <= now:
            heapq.heappop(heap)
        if not heap:
            del self._owners[owner]

    def _sweep(self, now: float, limit: int | None) -> None:
        heap = self._heap
        expiry = self._expiry
        owners = self._owners
        done = 0
        while heap and heap[0][0] <= now and (limit is None or done < limit):
            when, key = heapq.heappop(heap)
            entry = expiry.get(key)
            if entry is not None and entry[0] == when:
                del expiry[key]
                owner = entry[1]
                if owner is not None:
                    owner_heap = owners.get(owner)
                    if owner_heap is not None:
                        self._prune_owner(owner, owner_heap, now)
            done += 1
        # Stale heap items (a key re-stored after it expired) are bounded by the number
        # of stores; compact when they dominate.
        if len(heap) > 2 * len(expiry) + 64:
            self._heap = [(when, key) for key, (when, _) in expiry.items()]
            heapq.heapify(self._heap)

    def clear(self) -> None:
        """Forget everything (tests and key rotation)."""
        with self._lock:
            self._expiry.clear()
            self._heap.clear()
            self._owners.clear()


def check_acceptance_window(store: object, needed: int, *, server: str) -> None:
    """Refuse a store whose state-loss protection is shorter than the verifying policy's
    acceptance window (:attr:`tokenlib.dpop.DPoPPolicy.acceptance_window`): when a server
    is built (``ResourceServer``, ``TokenEndpoint``) or, for ``verify_proof``, per call.

    A store that can lose its entries (:class:`tokenlib.integrations.redis.RedisReplayCache`
    after a restart without persistence) declares ``acceptance_window``: for that long
    after a loss it refuses every proof whose acceptance began before the loss. If the
    policy accepts proofs for longer (the MCP preset's ±5 min: 900 s; the store's default
    is the RFC policy's 420 s), a proof recorded before the loss becomes replayable once
    the store stops refusing but the policy still accepts it (RFC 9449 §11.1). Stores
    without the attribute (the memory store: its state goes with the process) pass.
    """
    declared = getattr(store, "acceptance_window", None)
    if declared is None or isinstance(declared, bool) or not isinstance(declared, int | float):
        return
    if declared < needed:
        raise ValueError(
            f"{server}: the replay store refuses pre-loss proofs for acceptance_window="
            f"{declared:g} s after losing its state, but this server's DPoPPolicy accepts "
            f"a proof for {needed} s (iat_past, iat_past_with_nonce and twice iat_future): "
            "a proof recorded before a loss could be replayed after it. Create the store "
            "with acceptance_window=policy.acceptance_window (RFC 9449 §11.1)"
        )
