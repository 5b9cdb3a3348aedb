"""Random retriever: a seeded shuffle, deterministic for (seed, query, profile ids)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from personalign.retrievers.ranking import reject_arg
from personalign.retrievers.base import Retriever
from personalign.store import stable_hash
from personalign.tasks.spec import TaskSpec
from personalign.types import ProfileItem


class RandomRetriever(Retriever):
    """Ranks the profile in a random order that depends only on the seed, query and item ids."""

    name = "random"

    def __init__(self, arg: str | None = None, *, seed: int = 0, cache_dir: str | Path | None = None):
        reject_arg(self.name, arg)
        self.seed = seed

    def rank(self, query: str, profile: Sequence[ProfileItem], task: TaskSpec) -> list[int]:
        ids = [str(item.get("id", i)) for i, item in enumerate(profile)]
        key = int(stable_hash([self.seed, query, ids])[:16], 16)
        return np.random.default_rng(key).permutation(len(profile)).tolist()


PLUGIN = RandomRetriever
