"""The retrievers' and methods' LRU cache (cachetools behind a lock): shared by the service's request threads."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from personalign.retrievers.ranking import LRU


class SlowKey:
    """A key whose hashing takes a while and counts how many threads are inside the cache with it at once."""

    inside = most = 0
    guard = threading.Lock()

    def __init__(self, name: int):
        self.name = name

    def __hash__(self) -> int:
        with SlowKey.guard:
            SlowKey.inside += 1
            SlowKey.most = max(SlowKey.most, SlowKey.inside)
        time.sleep(0.001)  # long enough that two unguarded threads overlap here
        with SlowKey.guard:
            SlowKey.inside -= 1
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SlowKey) and other.name == self.name


def test_one_thread_at_a_time_inside_the_cache():
    cache: LRU[int] = LRU(4)
    keys = [SlowKey(i) for i in range(8)]

    def use(i: int) -> None:
        cache.put(keys[i % 8], i)
        cache.get(keys[(i + 3) % 8])
        cache.get_or_build(keys[(i + 5) % 8], lambda: i)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(use, range(24)))
    assert SlowKey.most == 1, f"{SlowKey.most} threads were inside the cache at once"
    assert len(cache) == 4


def test_least_recently_used_goes_first():
    cache: LRU[str] = LRU(2)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # now b is the least recently used
    cache.put("c", "C")
    assert cache.get("b") is None and cache.get("a") == "A" and cache.get("c") == "C"
    built = []
    assert cache.get_or_build("d", lambda: built.append(1) or "D") == "D"
    assert cache.get_or_build("d", lambda: built.append(1) or "X") == "D" and built == [1]
    cache.clear()
    assert len(cache) == 0


def test_a_cache_of_size_zero_keeps_nothing_and_still_builds() -> None:
    cache = LRU(0)
    assert cache.get_or_build("key", lambda: 7) == 7
    assert cache.get("key") is None and len(cache) == 0
