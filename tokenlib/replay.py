"""Replay caches for DPoP ``jti`` values (RFC 9449 §11.1).

A :class:`ReplayCache` records a key until it expires and says, atomically, whether it
was new. Verification fails closed: a cache that cannot answer raises
:class:`~tokenlib.errors.ReplayStateUnavailable` instead of letting a possible replay in.
Keys are fixed-length hex hashes (see :func:`tokenlib.dpop.replay_key`), so a huge
``jti`` cannot bloat memory.
"""

from __future__ import annotations

import heapq
import math
import threading
from typing import Protocol, runtime_checkable

from tokenlib.errors import ReplayStateUnavailable

__all__ = ["MemoryReplayCache", "ReplayCache"]


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


class MemoryReplayCache:
    """A thread-safe in-process :class:`ReplayCache` with a hard memory bound.

    A dict maps key to expiry; a min-heap of ``(expiry, key)`` finds expired entries in
    O(log n). Expired entries are dropped a few at a time on every call (amortised O(1)
    work per call) and all at once when the cache is full. If the cache is still full
    after that, the new key is *refused* with ``ReplayStateUnavailable`` (HTTP 503):
    forgetting a live entry could let a replay through, so it never does.

    Only protects one process: behind a load balancer use a shared store.
    """

    _SWEEP_PER_CALL = 4

    def __init__(self, max_entries: int = 100_000) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError("max_entries must be a positive int")
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def __repr__(self) -> str:
        return f"MemoryReplayCache(entries={len(self)}, max_entries={self.max_entries})"

    def check_and_store(
        self, key: str, *, expires_at: float, now: float, owner: str | None = None
    ) -> bool:
        """Record ``key`` until ``expires_at``; True if new, False if a live replay."""
        if not isinstance(key, str):
            raise TypeError("key must be a str")
        if not (math.isfinite(expires_at) and math.isfinite(now)):
            raise ValueError("expires_at and now must be finite")
        with self._lock:
            self._sweep(now, self._SWEEP_PER_CALL)
            current = self._expiry.get(key)
            if current is not None and current > now:
                return False
            if current is None and len(self._expiry) >= self.max_entries:
                self._sweep(now, None)
                if len(self._expiry) >= self.max_entries:
                    raise ReplayStateUnavailable(
                        "the replay cache is full of live entries; refusing rather than "
                        "risking an undetected replay",
                        details={"check": "replay_cache", "entries": len(self._expiry)},
                    )
            self._expiry[key] = expires_at
            heapq.heappush(self._heap, (expires_at, key))
            return True

    def _sweep(self, now: float, limit: int | None) -> None:
        heap = self._heap
        expiry = self._expiry
        done = 0
        while heap and heap[0][0] <= now and (limit is None or done < limit):
            when, key = heapq.heappop(heap)
            if expiry.get(key) == when:
                del expiry[key]
            done += 1
        # Stale heap items (a key re-stored after it expired) are bounded by the number
        # of stores; compact when they dominate.
        if len(heap) > 2 * len(expiry) + 64:
            self._heap = [(when, key) for key, when in expiry.items()]
            heapq.heapify(self._heap)

    def clear(self) -> None:
        """Forget everything (tests and key rotation)."""
        with self._lock:
            self._expiry.clear()
            self._heap.clear()
