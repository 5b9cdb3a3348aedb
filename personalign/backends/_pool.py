"""Worker processes for in-process backends (llama.cpp): ``--workers N`` loads the model N times.

llama.cpp generates one sequence at a time per model, and a Python thread cannot run two at once,
so throughput on a multi-core machine comes from several processes, each with its own copy of
the model and ``cores / N`` threads. Requests of a batch go to whichever worker is free; results
keep the input order, and each request's completion does not depend on which worker ran it.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from personalign.backends.base import LLM
from personalign.errors import BackendError
from personalign.types import Completion, GenParams, Messages

_WORKER: LLM | None = None


def _worker_llm(spec: str, options: dict[str, Any]) -> LLM:
    global _WORKER
    if _WORKER is None:
        from personalign.backends import get_llm

        _WORKER = get_llm(spec, **options)
    return _WORKER


def _call(spec: str, options: dict[str, Any], what: str, *args: Any) -> Any:
    llm = _worker_llm(spec, options)
    if what == "info":
        return llm.name, llm.identity(), llm.describe()
    if what == "count":
        return llm.count_tokens(*args)
    return llm.chat(*args)


class WorkerPoolLLM(LLM):
    """Spread requests over ``workers`` processes that each run ``get_llm(spec, **options)``."""

    def __init__(self, spec: str, workers: int, options: dict[str, Any] | None = None):
        self.spec, self.workers, self.parallelism, self.asynchronous = spec, workers, workers, True
        self.options = dict(options or {})
        if spec.partition(":")[0] == "llamacpp" and not self.options.get("n_threads"):
            self.options["n_threads"] = max(1, (os.cpu_count() or 1) // workers)
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        self.name, self._identity, self._describe = self._submit("info").result()

    def _submit(self, what: str, *args: Any):
        try:
            return self._pool.submit(_call, self.spec, self.options, what, *args)
        except BrokenProcessPool:
            raise self._died() from None

    def _died(self) -> BackendError:
        return BackendError(f"a worker process of '{self.spec}' died (out of memory?); run again to resume")

    def identity(self) -> dict:
        return self._identity

    def describe(self) -> dict:
        return {**self._describe, "workers": self.workers}

    def count_tokens(self, text: str) -> int:
        return self._submit("count", text).result()

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        return self.chat_batch([messages], params)[0]

    def submit_batch(self, batch: list[Messages], params: GenParams | None = None) -> list[Future]:
        return [self._submit("chat", messages, params or GenParams()) for messages in batch]

    def chat_batch(self, batch: list[Messages], params: GenParams | None = None) -> list[Completion]:
        try:
            return [future.result() for future in self.submit_batch(batch, params)]
        except BrokenProcessPool:
            raise self._died() from None

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)
