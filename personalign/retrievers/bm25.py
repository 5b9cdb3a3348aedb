"""BM25 retriever (``bm25s``, Okapi parameters, lower-cased word tokens, no stemming or stopwords)."""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from personalign.retrievers.ranking import LRU, rank_by_scores, recency_order, reject_arg
from personalign.retrievers.base import Retriever
from personalign.tasks.spec import TaskSpec
from personalign.types import ProfileItem

_TOKEN = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscore); punctuation is dropped."""
    return _TOKEN.findall(text.lower())


@functools.cache
def _quiet_bm25s() -> Any:
    """``bm25s``, imported once. Its import sets its logger to DEBUG; once any library gives the root logger
    a handler (rouge_score does), every index build would print "Building index from tokens"."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


class _Index:
    """A BM25 index over one profile's documents."""

    def __init__(self, docs: list[str], k1: float, b: float):
        bm25s = _quiet_bm25s()
        tokens = [tokenize(doc) for doc in docs]
        self.vocab = {token for doc in tokens for token in doc}
        self.size = len(docs)
        self.model = bm25s.BM25(k1=k1, b=b, method="lucene") if self.vocab else None
        if self.model is not None:
            self.model.index(tokens, show_progress=False)

    def scores(self, query: str) -> np.ndarray | None:
        """BM25 score of every document, or None when no query token occurs in the profile."""
        terms = [t for t in tokenize(query) if t in self.vocab]
        if not terms or self.model is None:
            return None
        scores = np.asarray(self.model.get_scores(terms), dtype=np.float64)
        return scores if scores.max() > 0 else None


class BM25Retriever(Retriever):
    """Ranks profile documents by BM25 score; ties go to newer items, no overlap gives recency order.

    IDF is Lucene's ``log(1 + (N - n + 0.5) / (n + 0.5))``: like BM25Okapi but never zero or
    negative, so a term in half of a tiny profile still counts. One index is built per profile and
    the last ``cache_size`` are kept, keyed by the documents themselves (a tuple: hashed by Python,
    compared exactly on a hit, ~10x cheaper than a SHA-256 of a large profile).
    """

    name = "bm25"

    def __init__(
        self,
        arg: str | None = None,
        *,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        k1: float = 1.5,
        b: float = 0.75,
        cache_size: int = 32,
    ):
        reject_arg(self.name, arg)
        self.k1, self.b = k1, b
        self._indices: LRU[_Index] = LRU(cache_size)

    def index(self, docs: list[str]) -> _Index:
        """The (cached) index of a list of documents."""
        return self._indices.get_or_build(tuple(docs), lambda: _Index(docs, self.k1, self.b))

    def rank(self, query: str, profile: Sequence[ProfileItem], task: TaskSpec) -> list[int]:
        if not profile:
            return []
        scores = self.index([task.item_document(item) for item in profile]).scores(query)
        return recency_order(profile) if scores is None else rank_by_scores(scores)


PLUGIN = BM25Retriever
