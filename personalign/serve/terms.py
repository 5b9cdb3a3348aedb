"""The terms of the store's BM25 index: the same lower-cased word tokens as ``BM25Retriever``, keyed by user.

A row holds a user key (``owner_key``: 64 bits of SHA-256 of tenant and user, so that the index carries no
user id), a term, an item, the term's count in it and the item's length in tokens (BM25's document length,
kept on every row so that ranking reads nothing else); each item also has one row with the empty term (its
length rows: counted, the user's number of items; summed, their total length).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from personalign.retrievers.bm25 import tokenize

TERM_CHARS = 64  # longer tokens are cut to this many characters, in items and queries alike
LENGTH = ""      # the term of an item's length row (no token is empty)


def owner_key(tenant: str, user: str) -> int:
    """A signed 64-bit key for one user of one tenant."""
    digest = hashlib.sha256(f"{tenant}\x00{user}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def terms(text: str) -> list[str]:
    """The index terms of a text, in order, repeats kept."""
    return [token[:TERM_CHARS] for token in tokenize(text)]


def postings(item_pk: int, tenant: str, user: str, text: str) -> list[dict[str, Any]]:
    """The index rows of one item: one per distinct term with its count, and the length row."""
    owner, counts = owner_key(tenant, user), Counter(terms(text))
    length = sum(counts.values())
    return [{"owner": owner, "term": term, "item_pk": item_pk, "tf": tf, "dl": length}
            for term, tf in [*counts.items(), (LENGTH, length)]]
