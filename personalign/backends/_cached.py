"""An LLM wrapper that stores every completion in SQLite, so runs are reproducible and resumable."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from personalign.backends.base import LLM
from personalign.store import SqliteStore, stable_hash
from personalign.types import Completion, GenParams, Messages


class CachedLLM(LLM):
    """Answer from the cache when the same model saw the same messages and parameters before.

    ``chat_batch`` forwards only the misses to the inner backend, in chunks of ``chunk_size`` (by default
    32, or 4x what the backend runs at once), and stores each chunk's results as soon as it comes back (a
    crash loses at most one chunk).
    """

    def __init__(self, inner: LLM, path: str | Path, chunk_size: int | None = None):
        self.inner = inner
        self.name = inner.name
        self.parallelism, self.asynchronous = inner.parallelism, inner.asynchronous
        self.chunk_size = max(1, chunk_size or max(32, 4 * inner.parallelism))  # enough to keep the backend busy
        self.store = SqliteStore(path, table="llm_cache")

    def __getattr__(self, attr: str) -> Any:
        """Reach the inner backend's own attributes (``model``, ``tokenizer``...)."""
        if attr == "inner":
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def key(self, messages: Messages, params: GenParams) -> str:
        """Cache key of one call."""
        fields = asdict(params)
        for name in ("json_schema", "openai"):  # keys made before these fields existed stay valid
            if fields.get(name) is None:
                fields.pop(name, None)
        return stable_hash({"model": self.inner.identity(), "messages": messages, "params": fields})

    def _lookup(self, key: str) -> Completion | None:
        row = self.store.get_json(key)
        if row is None:
            return None
        try:
            return Completion(str(row["text"]), int(row["prompt_tokens"]), int(row["completion_tokens"]), True)
        except (TypeError, KeyError, ValueError):  # valid JSON of another shape: damaged, asked again
            self.store.damaged()
            return None

    def identity(self) -> dict:
        return self.inner.identity()

    def _save(self, key: str, completion: Completion) -> None:
        if not completion.text.strip():  # an empty answer may be a server hiccup: ask again next time
            return
        row = {"text": completion.text, "prompt_tokens": completion.prompt_tokens,
               "completion_tokens": completion.completion_tokens}
        self.store.put_json(key, row)

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        return self.chat_batch([messages], params)[0]

    def chat_batch(self, batch: list[Messages], params: GenParams | None = None) -> list[Completion]:
        params = params or GenParams()
        keys = [self.key(messages, params) for messages in batch]
        results: list[Completion | None] = [self._lookup(k) for k in keys]
        first_of: dict[str, int] = {}  # one inner call per distinct missing key
        for i, k in enumerate(keys):
            if results[i] is None:
                first_of.setdefault(k, i)
        misses = list(first_of.values())
        for start in range(0, len(misses), self.chunk_size):
            chunk = misses[start:start + self.chunk_size]
            for i, completion in zip(chunk, self.inner.chat_batch([batch[i] for i in chunk], params)):
                self._save(keys[i], completion)
                results[i] = completion
        # a repeated prompt within the batch is answered from its first copy, like a cache hit
        return [r if r is not None else replace(results[first_of[k]], cached=True) for r, k in zip(results, keys)]

    def submit_batch(self, batch: list[Messages], params: GenParams | None = None) -> list[Future]:
        """Hits now; misses through an asynchronous backend, each cached the moment it arrives."""
        if not self.inner.asynchronous:
            return super().submit_batch(batch, params)  # chat_batch: chunked, each chunk cached on return
        params = params or GenParams()
        keys = [self.key(messages, params) for messages in batch]
        futures: list[Future] = []
        started: dict[str, Future] = {}
        for messages, key in zip(batch, keys):
            hit = self._lookup(key)
            if hit is not None:
                futures.append(_finished(hit))
            elif key in started:  # a repeated prompt within the batch: answered from its first copy
                futures.append(_as_cached(started[key]))
            else:
                (future,) = self.inner.submit_batch([messages], params)
                future.add_done_callback(lambda f, key=key: f.exception() is None and self._save(key, f.result()))
                started[key] = future
                futures.append(future)
        return futures

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def describe(self) -> dict:
        return {**self.inner.describe(), "cache": str(self.store.path)}

    def close(self) -> None:
        """Close the cache file and the backend behind it."""
        self.store.close()
        self.inner.close()


def _finished(completion: Completion) -> Future:
    future: Future = Future()
    future.set_result(completion)
    return future


def _as_cached(source: Future) -> Future:
    """A future with ``source``'s completion marked as a cache hit."""
    copy: Future = Future()

    def forward(done: Future) -> None:
        if done.exception() is not None:
            copy.set_exception(done.exception())
        else:
            copy.set_result(replace(done.result(), cached=True))

    source.add_done_callback(forward)
    return copy
