"""Helpers shared by the retrievers: argument checks, tie-aware ranking and a tiny LRU."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Hashable, Sequence, TypeVar

import numpy as np

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


def rank_by_scores(scores: np.ndarray) -> list[int]:
    """Indices by descending score; equal scores prefer the more recent (higher) index."""
    scores = np.asarray(scores, dtype=np.float64)
    positions = np.arange(len(scores))
    return np.lexsort((-positions, -scores)).tolist()


class LRU(Generic[V]):
    """A small least-recently-used cache."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[Hashable, V] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        """The cached value for ``key`` (now most recently used), or None."""
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: Hashable, value: V) -> None:
        """Store a value, evicting the least recently used ones beyond ``size``."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get_or_build(self, key: Hashable, build: Callable[[], V]) -> V:
        """The cached value for ``key``, building and caching it on a miss."""
        value = self.get(key)
        if value is None:
            value = build()
            self.put(key, value)
        return value

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()
