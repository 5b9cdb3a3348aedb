"""Derived data for the service: item embeddings built in the background from a durable queue.

Adding items enqueues an ``embed`` job in the same commit. A ``DerivedWorker`` thread in every service
process claims jobs from the store (so any process may do any job, and a job survives a restart) and
embeds the user's items that lack an embedding. A request never waits: ``StoredDenseRetriever`` ranks
the embedded items by cosine similarity and puts not-yet-embedded ones after them, ranked by BM25.
Embeddings live in the store, keyed by item, and are deleted with their item.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from typing import Any, Sequence

import numpy as np

from personalign.retrievers.base import Retriever
from personalign.retrievers.bm25 import BM25Retriever
from personalign.retrievers._util import rank_by_scores
from personalign.retrievers.dense import DenseRetriever
from personalign.serve.store import Store
from personalign.tasks.spec import TaskSpec


class StoredDenseRetriever(Retriever):
    """Dense retrieval over embeddings precomputed in the store (``item["_embedding"]``); nothing is cached."""

    name = "stored-dense"

    def __init__(self, encoder: DenseRetriever):
        self.encoder, self.fallback = encoder, BM25Retriever()

    def rank(self, query: str, profile: Sequence[dict], task: TaskSpec) -> list[int]:
        embedded = [i for i, item in enumerate(profile) if item.get("_embedding") is not None]
        pending = [i for i in range(len(profile)) if profile[i].get("_embedding") is None]
        order: list[int] = []
        if embedded:
            matrix = self.encoder.prepare(np.stack([profile[i]["_embedding"] for i in embedded]))
            query_vector = self.encoder.prepare(self.encoder.encode([query]))[0]
            order = [embedded[j] for j in rank_by_scores(matrix @ query_vector)]
        if pending:
            order += [pending[j] for j in self.fallback.rank(query, [profile[i] for i in pending], task)]
        return order


class DerivedWorker:
    """Claims and runs derived-data jobs until stopped (one daemon thread per service process)."""

    def __init__(self, store: Store, encoder: DenseRetriever, poll_seconds: float = 0.5):
        self.store, self.encoder, self.poll = store, encoder, poll_seconds
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="personalign-derived", daemon=True)

    def start(self) -> "DerivedWorker":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=30)

    def run_once(self) -> dict[str, Any] | None:
        """Claim one job and run it; the job, or None when the queue is empty."""
        job = self.store.claim_job(self.owner)
        if job is None:
            return None
        try:
            missing = self.store.missing_embeddings(job["tenant"], job["user"], self.encoder.model_id)
            if missing:
                vectors = self.encoder.encode([text for _, text in missing])
                self.store.put_embeddings(self.encoder.model_id, list(zip((pk for pk, _ in missing), vectors)))
            self.store.finish_job(job["id"])
        except Exception as exc:  # logged on the job; retried up to 3 times
            print(f"personalign serve: derived job {job['id']} failed: {exc}", file=sys.stderr)
            self.store.finish_job(job["id"], error=f"{type(exc).__name__}: {exc}")
        return job

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.run_once() is None:
                self._stop.wait(self.poll)
