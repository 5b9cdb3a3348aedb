"""The interface every retriever implements, plus LaMP query construction."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

from personalign.tasks.spec import TaskSpec
from personalign.types import ProfileItem


class Retriever(ABC):
    """Ranks profile items for a query, best first."""

    name: str = "retriever"

    @abstractmethod
    def rank(self, query: str, profile: Sequence[ProfileItem], task: TaskSpec) -> list[int]:
        """Indices into ``profile``, best first. Must return every index exactly once."""

    def top_k(self, query: str, profile: Sequence[ProfileItem], task: TaskSpec, k: int) -> list[ProfileItem]:
        """The ``k`` best profile items for ``query``."""
        if k <= 0 or not profile:
            return []
        return [profile[i] for i in self.rank(query, profile, task)[:k]]


def build_query(task: TaskSpec, task_input: str, base_answer: str | None = None) -> str:
    """LaMP's query (text after the task marker), optionally joined with a base answer (RPO's q ⊕ A_base)."""
    query = task.query_text(task_input)
    return f"{query} {base_answer.strip()}" if base_answer else query
