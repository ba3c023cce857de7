"""Every in-process memo of the core, in one place, with one way to clear them.

Two kinds of caches exist, and only deterministic work goes in either (an evicted or
stale entry costs time, never correctness):

* **owned caches** live on the object that uses them and die with it: a
  :class:`~tokenlib.bearer.TokenVerifier`'s validated-token cache
  (:class:`~tokenlib.bearer.AccessTokenCache`, least-recently-used), a
  :class:`~tokenlib.jwks.JWKSet`'s key-selection memo. Clear them on the object.
* **process-wide caches** memoise pure functions of untrusted input that have no owner
  (they are called as plain functions, e.g. :func:`tokenlib.dpop.verify_proof`). Each
  is created with :func:`process_cache` under a name, has a hard size bound, and is
  listed by :func:`cache_info` and emptied by :func:`clear_caches`:

  ============================  =======  ==============================================
  name                          bound    what
  ============================  =======  ==============================================
  ``dpop.proof_headers``        4096     validated DPoP proof headers, by exact segment
  ``dpop.signing_headers``      256      encoded proof headers of a client's own keys
  ``htu.server_urls``           2048     normalised server URLs (≤ 1024 characters)
  ``jwk.public_keys``           4096     parsed public JWKs and thumbprints
  ``jws.headers``               512      decoded access-token headers, by segment
  ``jwks.sets``                 32       JWKSets parsed from mappings, by content
  ============================  =======  ==============================================

  Every bound is per process; an attacker who churns one (fresh keys, fresh headers)
  evicts other entries and so costs re-parsing time, but cannot grow memory.

``clear_caches()`` is for tests, key rotation drills and memory measurements; it never
affects what is accepted. Other packages (``tokenlib.integrations``) keep their own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

__all__ = ["BoundedCache", "cache_info", "clear_caches", "process_cache", "register_cache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """A map of at most ``maxsize`` entries.

    Default (``lru=False``): the oldest *insertion* goes first; reads take no lock (a
    dict lookup is atomic) and do not reorder, so the hot path pays one lookup; writes
    take the lock. ``lru=True``: reads move the entry to the end under the lock, so the
    least recently *used* entry goes first (for caches whose hit pattern matters more
    than one lookup, e.g. validated tokens).
    """

    __slots__ = ("_data", "_lock", "_lru", "_maxsize")

    def __init__(self, maxsize: int, *, lru: bool = False) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize <= 0:
            raise ValueError("maxsize must be a positive int")
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._maxsize = maxsize
        self._lru = lru

    def __len__(self) -> int:
        return len(self._data)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def get(self, key: K) -> V | None:
        """The cached value for ``key``, or ``None``."""
        if not self._lru:
            return self._data.get(key)
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        """Remember ``value`` for ``key``, dropping the oldest entries beyond ``maxsize``."""
        with self._lock:
            self._data[key] = value
            if self._lru:
                self._data.move_to_end(key)
            while len(self._data) > self._maxsize:
                self._data.popitem(last=False)

    def discard(self, key: K) -> None:
        """Forget ``key`` if present."""
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._data.clear()


class _Clearable(Protocol):
    def __len__(self) -> int: ...

    def clear(self) -> None: ...


class _FunctionCache:
    """Adapts a ``functools.lru_cache`` wrapper (C-fast on the hot path) to the registry."""

    __slots__ = ("_wrapper",)

    def __init__(self, wrapper: Callable[..., object]) -> None:
        self._wrapper = wrapper

    def __len__(self) -> int:
        return int(self._wrapper.cache_info().currsize)  # type: ignore[attr-defined]

    def clear(self) -> None:
        self._wrapper.cache_clear()  # type: ignore[attr-defined]


_REGISTRY: dict[str, tuple[_Clearable, int]] = {}
_REGISTRY_LOCK = threading.Lock()


def register_cache(name: str, cache: _Clearable | Callable[..., object], maxsize: int) -> None:
    """Register a process-wide cache (a :class:`BoundedCache`, or an ``lru_cache``
    wrapper) under ``name`` so that :func:`clear_caches` reaches it (a second
    registration under the same name, e.g. a reloaded module, replaces the first)."""
    entry: _Clearable = (
        _FunctionCache(cache) if callable(cache) and hasattr(cache, "cache_clear") else cache  # type: ignore[assignment]
    )
    with _REGISTRY_LOCK:
        _REGISTRY[name] = (entry, maxsize)  # a reloaded module replaces its own entry


def process_cache(name: str, maxsize: int) -> BoundedCache[K, V]:
    """A new registered process-wide :class:`BoundedCache` of at most ``maxsize``."""
    cache: BoundedCache[K, V] = BoundedCache(maxsize)
    register_cache(name, cache, maxsize)
    return cache


def clear_caches() -> None:
    """Empty every process-wide cache of the core (see the module docstring).

    Safe at any time and from any thread: the caches only hold results of pure
    functions, so the next call recomputes them. Owned caches (a verifier's token cache,
    a JWKSet's memo) are cleared on their objects.
    """
    with _REGISTRY_LOCK:
        caches = [cache for cache, _ in _REGISTRY.values()]
    for cache in caches:
        cache.clear()


def cache_info() -> dict[str, tuple[int, int]]:
    """``{name: (entries, maxsize)}`` for every process-wide cache."""
    with _REGISTRY_LOCK:
        items = list(_REGISTRY.items())
    return {name: (len(cache), maxsize) for name, (cache, maxsize) in sorted(items)}
