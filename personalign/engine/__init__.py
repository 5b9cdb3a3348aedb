"""The request engine: runs many method plans at once and batches their LLM requests.

Methods declare their work as plans (``Method.plan``) that yield lists of ``Request``s. The engine
keeps a window of plans in flight; each round it collects the pending requests of every plan,
groups them by backend and sampling parameters, and sends each group with one ``chat_batch``
call, so HTTP backends run them concurrently, transformers batches them and a worker pool spreads
them over processes. Results come back in the order the plans went in, and greedy results equal a
sequential run because every request is answered independently. ``personalign eval``, RPO
trajectory generation and the service share it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from personalign.errors import BackendError, ConfigError
from personalign.types import Answer, Completion, Request

IN_FLIGHT_PER_SLOT = 8  # plans in flight per request the backends can work on at once


def window_for(backends: dict[str, Any]) -> int:
    """How many plans to keep in flight: enough to keep every backend busy, few enough to save often."""
    return IN_FLIGHT_PER_SLOT * max([getattr(llm, "parallelism", 1) for llm in backends.values()] or [1])


@dataclass
class _InFlight:
    index: int
    plan: Any
    pending: list[Request] = field(default_factory=list)
    seconds: float = 0.0


def _check(completions: list[Completion], requests: list[Request], backend: str) -> list[Completion]:
    if len(completions) != len(requests):
        raise BackendError(f"backend '{backend}' returned {len(completions)} completions for {len(requests)} requests")
    return completions


def answer_requests(requests: list[Request], backends: dict[str, Any]) -> list[Completion]:
    """Answer a list of requests, one ``chat_batch`` per (backend, parameters) group, in input order."""
    groups: dict[tuple[str, Any], list[int]] = {}
    for i, request in enumerate(requests):
        groups.setdefault((request.llm, request.params), []).append(i)
    results: list[Completion | None] = [None] * len(requests)
    for (name, params), indices in groups.items():
        llm = backends.get(name)
        if llm is None:
            raise ConfigError(f"a request names backend '{name}', which this method does not have")
        batch = [requests[i] for i in indices]
        for i, completion in zip(indices, _check(llm.chat_batch([r.messages for r in batch], params), batch, name)):
            results[i] = completion
    return results  # type: ignore[return-value]


def _advance(job: _InFlight, completions: list[Completion] | None) -> Answer | None:
    """Step a plan: send it completions (or start it); store its next requests or return its answer."""
    try:
        job.pending = job.plan.send(completions) if completions is not None else next(job.plan)
    except StopIteration as stop:
        if not isinstance(stop.value, Answer):
            raise TypeError(f"a method plan returned {type(stop.value).__name__}, not an Answer") from None
        return stop.value
    if not job.pending:
        raise TypeError("a method plan yielded an empty request list")
    return None


def run_plan(plan: Any, backends: dict[str, Any]) -> Answer:
    """Run one plan to its answer, one request batch after another."""
    job = _InFlight(0, plan)
    answer = _advance(job, None)
    while answer is None:
        answer = _advance(job, answer_requests(job.pending, backends))
    return answer


class Engine:
    """Runs plans with up to ``window`` in flight; yields ``(index, answer, seconds)`` in input order.

    ``seconds`` is the example's share of the wall time: each round's time is split evenly over
    the plans in flight, so the shares of a run add up to its wall time.
    """

    def __init__(self, backends: dict[str, Any], window: int | None = None):
        window = window_for(backends) if window is None else window
        if window < 1:
            raise ConfigError(f"engine window must be at least 1, got {window}")
        self.backends, self.window = backends, window

    def run(self, plans: Iterable[Any]) -> Iterator[tuple[int, Answer, float]]:
        source = iter(enumerate(plans))
        active: list[_InFlight] = []
        done: dict[int, tuple[Answer, float]] = {}
        next_out = 0
        exhausted = False
        while True:
            start = time.perf_counter()
            while not exhausted and len(active) < self.window:
                try:
                    index, plan = next(source)
                except StopIteration:
                    exhausted = True
                    break
                job = _InFlight(index, plan)
                answer = _advance(job, None)
                if answer is None:
                    active.append(job)
                else:
                    done[index] = (answer, 0.0)
            if active:
                requests = [r for job in active for r in job.pending]
                completions = answer_requests(requests, self.backends)
                share = (time.perf_counter() - start) / len(active)
                still, offset = [], 0
                for job in active:
                    mine = completions[offset:offset + len(job.pending)]
                    offset += len(job.pending)
                    job.seconds += share
                    answer = _advance(job, mine)
                    if answer is None:
                        still.append(job)
                    else:
                        done[job.index] = (answer, job.seconds)
                active = still
            while next_out in done:
                answer, seconds = done.pop(next_out)
                yield next_out, answer, seconds
                next_out += 1
            if exhausted and not active and not done:
                return
