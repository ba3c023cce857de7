"""One bounded memo for deterministic work done per request (parsed keys, checked headers)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """A map of at most ``maxsize`` entries; the oldest goes first when it is full.

    Reads take no lock (a dict lookup is atomic) and do not reorder, so the hot path pays
    one lookup; writes take the lock. Only results that are pure functions of the key
    belong here, so a stale or evicted entry costs time, never correctness.
    """

    __slots__ = ("_data", "_lock", "_maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize <= 0:
            raise ValueError("maxsize must be positive")
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._maxsize = maxsize

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        """The cached value for ``key``, or ``None``."""
        return self._data.get(key)

    def put(self, key: K, value: V) -> None:
        """Remember ``value`` for ``key``, dropping the oldest entries beyond ``maxsize``."""
        with self._lock:
            self._data[key] = value
            while len(self._data) > self._maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._data.clear()
