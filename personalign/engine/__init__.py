"""The request engine: runs many method plans at once and keeps the backends busy.

Methods declare their work as plans (``Method.plan``) that yield lists of ``Request``s. The engine
keeps a window of plans in flight. Each step it gathers the new requests of every plan that moved,
groups them by backend and sampling parameters, and submits each group with one ``submit_batch``
call; then it advances whichever plans have all their completions, while the other requests are
still in flight. So HTTP backends keep ``concurrency`` requests busy while retrieval runs,
transformers gets whole batches, and a worker pool spreads them over processes. Results come back
in the order the plans went in, and greedy results equal a sequential run because every request
is answered independently. ``personalign eval``, RPO trajectory generation and the service share it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
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
    futures: list[Future] = field(default_factory=list)
    seconds: float = 0.0


def submit_requests(requests: list[Request], backends: dict[str, Any]) -> list[Future]:
    """Submit requests, one ``submit_batch`` per (backend, parameters) group; futures in input order."""
    groups: dict[tuple[str, Any], list[int]] = {}
    for i, request in enumerate(requests):
        groups.setdefault((request.llm, request.params), []).append(i)
    futures: list[Future | None] = [None] * len(requests)
    for (name, params), indices in groups.items():
        llm = backends.get(name)
        if llm is None:
            raise ConfigError(f"a request names backend '{name}', which this method does not have")
        submitted = llm.submit_batch([requests[i].messages for i in indices], params)
        if len(submitted) != len(indices):
            raise BackendError(f"backend '{name}' returned {len(submitted)} results for {len(indices)} requests")
        for i, future in zip(indices, submitted):
            futures[i] = future
    return futures  # type: ignore[return-value]


def answer_requests(requests: list[Request], backends: dict[str, Any]) -> list[Completion]:
    """Answer a list of requests and wait for all of them (input order)."""
    return [future.result() for future in submit_requests(requests, backends)]


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


def run_plan(plan: Any, backends: dict[str, Any],
             answer: Callable[[list[Request], dict[str, Any]], list[Completion]] = answer_requests) -> Answer:
    """Run one plan to its answer, one request batch after another (each batch through ``answer``)."""
    job = _InFlight(0, plan)
    result = _advance(job, None)
    while result is None:
        result = _advance(job, answer(job.pending, backends))
    return result


class Engine:
    """Runs plans with up to ``window`` in flight; yields ``(index, answer, seconds)`` in input order.

    ``seconds`` is the example's share of the wall time: each step's time is split evenly over the
    plans in flight, so the shares of a run add up to its wall time.
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
        next_out, exhausted, moved = 0, False, []
        clock = time.perf_counter()
        while True:
            while not exhausted and len(active) < self.window:  # start new plans
                try:
                    index, plan = next(source)
                except StopIteration:
                    exhausted = True
                    break
                job = _InFlight(index, plan)
                answer = _advance(job, None)
                if answer is None:
                    active.append(job)
                    moved.append(job)
                else:
                    done[index] = (answer, 0.0)
            if moved:  # everything the moved plans asked for, batched together
                futures = submit_requests([r for job in moved for r in job.pending], self.backends)
                offset = 0
                for job in moved:
                    job.futures = futures[offset:offset + len(job.pending)]
                    offset += len(job.pending)
                moved = []
            if active:
                ready = [job for job in active if all(f.done() for f in job.futures)]
                if not ready:
                    wait([f for job in active for f in job.futures if not f.done()], return_when=FIRST_COMPLETED)
                    ready = [job for job in active if all(f.done() for f in job.futures)]
                now = time.perf_counter()
                share, clock = (now - clock) / len(active), now
                for job in active:
                    job.seconds += share
                for job in ready:
                    answer = _advance(job, [f.result() for f in job.futures])
                    if answer is None:
                        moved.append(job)
                    else:
                        active.remove(job)
                        done[job.index] = (answer, job.seconds)
            while next_out in done:
                answer, seconds = done.pop(next_out)
                yield next_out, answer, seconds
                next_out += 1
            if exhausted and not active and not done:
                return
