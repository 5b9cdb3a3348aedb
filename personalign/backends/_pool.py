"""Worker processes for in-process backends (llama.cpp): ``--workers N`` loads the model N times.

llama.cpp generates one sequence at a time per model, and a Python thread cannot run two at once,
so throughput on a multi-core machine comes from several processes, each with its own copy of
the model and ``cores / N`` threads. Requests of a batch go to whichever worker is free; results
keep the input order, and each request's completion does not depend on which worker ran it.
"""

from __future__ import annotations

import atexit
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from personalign.backends.base import LLM
from personalign.errors import BackendError
from personalign.types import Completion, GenParams, Messages

_WORKER: LLM | None = None
PR_SET_PDEATHSIG = 1
WATCH_EVERY_S = 0.5


def _die_with_parent(parent: int, from_main_thread: bool) -> None:
    """Worker start: exit when the eval process is gone, however it went (SIGKILL, SIGTERM, the OOM killer).

    On Linux the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``; it watches the thread
    that started the worker, so it is set only when that was the main thread); everywhere, a watchdog
    thread exits when the parent pid changes. A worker that outlived its parent would hold the model's
    memory and the terminal's pipes for ever (``eval | cat`` would never end).
    """
    if from_main_thread and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="personalign-parent-watch").start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_EVERY_S)
    os._exit(1)


def _worker_llm(build: Callable[..., LLM], spec: str, options: dict[str, Any]) -> LLM:
    global _WORKER
    if _WORKER is None:
        _WORKER = build(spec, **options)
        atexit.register(_WORKER.close)  # free the model before the interpreter tears its modules down
    return _WORKER


def _call(build: Callable[..., LLM], spec: str, options: dict[str, Any], what: str, *args: Any) -> Any:
    llm = _worker_llm(build, spec, options)
    if what == "info":
        return llm.name, llm.identity(), llm.describe()
    if what == "count":
        return llm.count_tokens(*args)
    return llm.chat(*args)


class WorkerPoolLLM(LLM):
    """Spread requests over ``workers`` processes that each run ``build(spec, **options)``.

    ``build`` is ``personalign.backends.get_llm`` (passed in, so this module does not import its package back);
    it must be a module-level function: the spawned workers import it by name.
    """

    def __init__(self, spec: str, workers: int, options: dict[str, Any] | None, build: Callable[..., LLM]):
        self.spec, self.workers, self.parallelism, self.asynchronous = spec, workers, workers, True
        self.build = build
        self.options = dict(options or {})
        if spec.partition(":")[0] == "llamacpp" and not self.options.get("n_threads"):
            self.options["n_threads"] = max(1, (os.cpu_count() or 1) // workers)
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_die_with_parent,
                                         initargs=(os.getpid(), threading.current_thread() is threading.main_thread()))
        # one call per worker now, so every worker is started by this thread (what PR_SET_PDEATHSIG watches)
        infos = [self._submit("info") for _ in range(workers)]
        try:
            self.name, self._identity, self._describe = [info.result() for info in infos][0]
        except BrokenProcessPool:
            raise self._died() from None

    def _submit(self, what: str, *args: Any):
        try:
            return self._pool.submit(_call, self.build, self.spec, self.options, what, *args)
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
