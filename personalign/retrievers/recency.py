"""Recency retriever: newest items first, ignoring the query."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from personalign.retrievers.ranking import recency_order, reject_arg
from personalign.retrievers.base import Retriever
from personalign.tasks.spec import TaskSpec
from personalign.types import ProfileItem


class RecencyRetriever(Retriever):
    """Newest first by item ``date``; undated items after them, later profile position first."""

    name = "recency"

    def __init__(self, arg: str | None = None, *, seed: int = 0, cache_dir: str | Path | None = None):
        reject_arg(self.name, arg)

    def rank(self, query: str, profile: Sequence[ProfileItem], task: TaskSpec) -> list[int]:
        return recency_order(profile)


PLUGIN = RecencyRetriever
