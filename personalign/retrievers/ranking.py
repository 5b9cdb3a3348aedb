"""Helpers shared by the retrievers: argument checks, tie-aware ranking and a thread-safe LRU cache."""

from __future__ import annotations

import threading
from typing import Callable, Generic, Hashable, Sequence, TypeVar

import numpy as np
from cachetools import LRUCache

from personalign.errors import ConfigError
from personalign.types import ProfileItem

V = TypeVar("V")


def reject_arg(name: str, arg: str | None) -> None:
    """Raise a ConfigError if a retriever that takes no argument was given one (``bm25:x``)."""
    if arg:
        raise ConfigError(f"retriever '{name}' takes no argument (got '{name}:{arg}')")


def recency_order(profile: Sequence[ProfileItem]) -> list[int]:
    """Newest first: dated items by ``date`` (ISO strings), then undated ones; ties by later position."""
    dated = [i for i, item in enumerate(profile) if item.get("date")]
    undated = [i for i, item in enumerate(profile) if not item.get("date")]
    dated.sort(key=lambda i: (str(profile[i]["date"]), i), reverse=True)
    return dated + undated[::-1]


def most_recent(profile: Sequence[ProfileItem], k: int) -> list[ProfileItem]:
    """The ``k`` newest items, newest first (by ``date`` when present, else by profile position)."""
    return [profile[i] for i in recency_order(profile)[:k]]


def rank_by_scores(scores: np.ndarray) -> list[int]:
    """Indices by descending score; equal scores prefer the more recent (higher) index."""
    scores = np.asarray(scores, dtype=np.float64)
    positions = np.arange(len(scores))
    return np.lexsort((-positions, -scores)).tolist()


class LRU(Generic[V]):
    """A least-recently-used cache (``cachetools.LRUCache``) that threads may share: every access holds a lock.

    The service answers requests on many threads at once, and an ``LRUCache`` reorders itself on every read.
    A value is built outside the lock (two threads may build the same one; the later ``put`` wins)."""

    def __init__(self, size: int):
        self.size = size
        self._items: LRUCache[Hashable, V] = LRUCache(maxsize=max(size, 1))
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        """The cached value for ``key`` (now most recently used), or None."""
        with self._lock:
            return self._items.get(key)

    def put(self, key: Hashable, value: V) -> None:
        """Store a value, evicting the least recently used ones beyond ``size`` (size 0: caches nothing)."""
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value

    def get_or_build(self, key: Hashable, build: Callable[[], V]) -> V:
        """The cached value for ``key``, building and caching it on a miss."""
        value = self.get(key)
        if value is None:
            value = build()
            self.put(key, value)
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
