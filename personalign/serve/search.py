"""BM25 retrieval inside the store, so a request never reads or indexes a whole history.

``BM25Retriever`` rebuilt an index from all of a user's items on every request (a user with 5,000 items
cost 428 ms against 216 ms for a small one). The store now keeps the index (``db.HistoryTerm``, written
with each item and deleted with it) and ranks in SQL, the same on SQLite and PostgreSQL. The ranking is
``BM25Retriever``'s: Lucene's BM25 (k1 1.5, b 0.75) with the user's own items as the collection, ties to the
newer item, and items without a query term after the matches, newest first.

A request gets a ``StoredProfile``: its length is a count, ``search`` ranks in the store, and only a method
that reads every item (RPO's user summary, PAG's summary built in the request) loads them all.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from personalign.retrievers.bm25 import BM25Retriever
from personalign.serve.db import HistoryItem, HistoryTerm
from personalign.serve.store import Store, item_record
from personalign.serve.terms import LENGTH, owner_key, terms
from personalign.tasks.spec import TaskSpec
from personalign.types import ProfileItem

K1, B = 1.5, 0.75  # BM25Retriever's defaults
MAX_QUERY_TERMS = 256  # the distinct terms of a query that are looked up (a long conversation has many)
ITEM_COLUMNS = (HistoryItem.pk, HistoryItem.item_id, HistoryItem.text, HistoryItem.created_at)


def ranked_items(session: Session, tenant: str, user: str, query: str, k: int) -> list[Any]:
    """The rows (``ITEM_COLUMNS``) of the user's ``k`` items with the highest BM25 score for ``query``, best
    first (ties: the newer); only items holding a query term. Two indexed reads: the user's item count and
    total length with each query term's document frequency; then the postings of the query's terms, summed
    per item, the best ``k`` joined to their items (whose tenant and user are checked: a key collision finds none)."""
    owner, wanted = owner_key(tenant, user), Counter(dict(Counter(terms(query)).most_common(MAX_QUERY_TERMS)))
    found = {term: (n, length) for term, n, length in session.execute(
        select(HistoryTerm.term, func.count(), func.sum(HistoryTerm.dl)).where(
            HistoryTerm.owner == owner, HistoryTerm.term.in_([LENGTH, *wanted])).group_by(HistoryTerm.term))}
    count, total = found.pop(LENGTH, (0, 0))
    if not count or not found:
        return []
    weights = {t: wanted[t] * math.log(1 + (count - n + 0.5) / (n + 0.5)) for t, (n, _) in found.items()}
    rows = ", ".join(f"(:t{i}, CAST(:w{i} AS DOUBLE PRECISION))" for i in range(len(weights)))
    params = {"owner": owner, "avgdl": float(total) / count, "k": k,
              **{f"t{i}": t for i, t in enumerate(weights)}, **{f"w{i}": w for i, w in enumerate(weights.values())}}
    best = session.execute(text(
        f"WITH query_terms (term, weight) AS (VALUES {rows}), ranked AS ("
        f" SELECT p.item_pk, SUM(q.weight * p.tf / (p.tf + {K1} * ({1 - B} + {B} * p.dl / :avgdl))) AS score"
        " FROM query_terms q JOIN history_terms p ON p.owner = :owner AND p.term = q.term"
        " GROUP BY p.item_pk ORDER BY score DESC, p.item_pk DESC LIMIT :k) "
        "SELECT h.pk, h.item_id, h.text, h.created_at, h.tenant_id, h.user_id FROM ranked r "
        "JOIN history_items h ON h.pk = r.item_pk ORDER BY r.score DESC, r.item_pk DESC"
    ).columns(*ITEM_COLUMNS, HistoryItem.tenant_id, HistoryItem.user_id), params).all()
    return [row for row in best if (row.tenant_id, row.user_id) == (tenant, user)]  # by key: each row's own item


def search(store: Store, tenant: str, user: str, query: str, k: int) -> list[dict[str, Any]]:
    """The user's ``k`` best items for ``query`` by BM25, best first (then the newest items without a query term)."""
    if k <= 0:
        return []
    with store.sessions() as session:
        found = ranked_items(session, tenant, user, query, k)
        if len(found) < k:  # fewer matches than k: the newest other items, as BM25Retriever ranks them
            found += session.execute(select(*ITEM_COLUMNS).where(
                HistoryItem.tenant_id == tenant, HistoryItem.user_id == user,
                HistoryItem.pk.not_in([row.pk for row in found])).order_by(HistoryItem.pk.desc()).limit(k - len(found))).all()
        return [item_record(row) for row in found]


class StoredProfile(Sequence):
    """A user's history as a method sees it, read lazily: ``len`` counts, ``search`` ranks in the store, and
    indexing or iterating loads every item once (oldest first), for methods that read them all."""

    def __init__(self, store: Store, tenant: str, user: str):
        self.store, self.tenant, self.user = store, tenant, user
        self._count: int | None = None
        self._items: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        if self._count is None:
            with self.store.sessions() as session:
                self._count = int(session.execute(select(func.count()).select_from(HistoryItem).where(
                    HistoryItem.tenant_id == self.tenant, HistoryItem.user_id == self.user)).scalar_one())
        return self._count

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        if self._items is None:
            self._items = self.store.items(self.tenant, self.user)
        return self._items[index]

    def search(self, query: str, k: int) -> list[dict[str, Any]]:
        return search(self.store, self.tenant, self.user, query, k)


class StoredBM25Retriever(BM25Retriever):
    """BM25 that ranks a ``StoredProfile`` in the store (by the items' text: the service's task indexes nothing
    else); any other profile is ranked in memory as before."""

    name = "bm25"

    def top_k(self, query: str, profile: Sequence[ProfileItem], task: TaskSpec, k: int) -> list[ProfileItem]:
        if isinstance(profile, StoredProfile):
            return profile.search(query, k)
        return super().top_k(query, profile, task, k)
