"""Derived data for the service, built in the background from a durable queue: item embeddings and
versioned profile summaries.

Adding or deleting items enqueues one job per derived kind in the same commit. A ``DerivedWorker`` thread
in every service process claims jobs from the store (so any process may do any job, and a job survives a
restart) and runs the kind's builder:
- ``embed`` (``EmbeddingBuilder``): embeds the user's items that lack an embedding. ``StoredDenseRetriever``
  ranks embedded items by cosine similarity and puts not-yet-embedded ones after them, ranked by BM25.
  Embeddings are keyed by item and deleted with it.
- ``summary`` (``SummaryBuilder``): the method's per-user data from the user's newest items (PAG's profile
  summary, POPI's budgeted preference summary, RPM's user model of features, factors and reasoning paths),
  written by the method's own ``derive`` plan and stored as a new version with the items it was built from
  and the identity of the models that built it. RPM updates the newest version: only new items cost LLM
  calls. A request uses the newest complete version of its own models; deleting any of those items deletes
  that version.

A request never waits for a build.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from typing import Any, Callable, Sequence

import numpy as np

from personalign.retrievers import Retriever, rank_by_scores
from personalign.retrievers.bm25 import BM25Retriever
from personalign.retrievers.dense import DenseRetriever
from personalign.engine import answer_requests, run_plan
from personalign.serve.logs import error_summary
from personalign.serve.store import Store
from personalign.tasks.spec import TaskSpec
from personalign.types import Answer, Trace

Builder = Callable[[Store, dict[str, Any]], None]


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


class EmbeddingBuilder:
    """``embed`` jobs: embed the user's items that have no embedding from this encoder yet."""

    kind = "embed"

    def __init__(self, encoder: DenseRetriever):
        self.encoder = encoder

    def __call__(self, store: Store, job: dict[str, Any]) -> None:
        missing = store.missing_embeddings(job["tenant"], job["user"], self.encoder.model_id)
        if missing:
            vectors = self.encoder.encode([text for _, text in missing])
            store.put_embeddings(self.encoder.model_id, list(zip((pk for pk, _ in missing), vectors)))


class SummaryBuilder:
    """``summary`` jobs: a new version of the method's per-user derived data (PAG's or POPI's summary, RPM's
    user model), by the method's own ``derive`` plan, updated from the newest version of the same models."""

    kind = "summary"

    def __init__(self, personalizer: Any):
        self.method, self.lock = personalizer.method, personalizer.lock  # the lock the requests hold on the LLM
        self.one_at_a_time = not getattr(personalizer.llm, "asynchronous", False)  # an in-process model
        self.model_id = personalizer.derived_id

    def _answer(self, requests: list[Any], backends: dict[str, Any]) -> list[Any]:
        """A batch of ``derive``'s requests, taking the LLM lock for one request at a time on an in-process model,
        so that requests for answers get the model between a build's calls (they never wait for a whole build)."""
        completions: list[Any] = []
        for chunk in ([[r] for r in requests] if self.one_at_a_time else [requests]):
            with self.lock:
                completions += answer_requests(chunk, backends)
        return completions

    def _plan(self, items: list[dict[str, Any]], previous: str | None):  # ``derive`` as a plan the engine runs
        trace = Trace()
        text = yield from self.method.derive(items, previous, trace)
        return Answer(text, trace, "plain")

    def __call__(self, store: Store, job: dict[str, Any]) -> None:
        items = store.summary_source(job["tenant"], job["user"], self.method.derived_items)
        if not items:
            return
        previous = store.summary(job["tenant"], job["user"], self.model_id)
        plan = self._plan(items, previous["text"] if previous else None)
        text = run_plan(plan, self.method.backends(), self._answer).raw
        store.put_summary(job["tenant"], job["user"], self.model_id, text, [item["_pk"] for item in items])


class DerivedWorker:
    """Claims and runs derived-data jobs until stopped (one daemon thread per service process)."""

    def __init__(self, store: Store, builders: Sequence[Any], poll_seconds: float = 0.5):
        self.store, self.poll = store, poll_seconds
        self.builders: dict[str, Builder] = {builder.kind: builder for builder in builders}
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
            builder = self.builders.get(job["kind"])
            if builder is None:
                raise ValueError(f"no builder for derived kind {job['kind']!r} in this process")
            builder(self.store, job)
            self.store.finish_job(job["id"])
        except Exception as exc:  # logged on the job; retried up to 3 times
            # the type only: a message may quote the user's items
            print(f"personalign serve: derived job {job['id']} failed: {error_summary(exc)}", file=sys.stderr)
            self.store.finish_job(job["id"], error=error_summary(exc))
        return job

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.run_once() is None:
                self._stop.wait(self.poll)
