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
from collections.abc import Callable, Generator, Iterable, Iterator
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
    requests: int = 0


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


def stream_plan(plan: Any, backends: dict[str, Any], final_stage: str | None,
                final: Callable[[Request], Request] = lambda request: request,
                stream: bool = True) -> Generator[str, None, tuple[Answer, Completion | None]]:
    """Run one plan to its answer, streaming its final request: ``answer, final = yield from stream_plan(...)``
    (``final``: the final request's completion, None if the plan had none).

    The final request is a batch of one request of stage ``final_stage`` (a method's ``final_stage``); it
    goes out as ``final(request)`` (the service adds the client's output options) through the backend's
    ``stream``, whose text pieces this yields as they come (``stream=False``: answered at once, nothing
    yielded). Every other batch is answered as ``run_plan`` does. A plan that asks for more after its final
    request is a method error (its streamed text would not be its answer).
    """
    job, completion = _InFlight(0, plan), None
    result = _advance(job, None)
    while result is None:
        if final_stage is None or len(job.pending) != 1 or job.pending[0].stage != final_stage:
            result = _advance(job, answer_requests(job.pending, backends))
            continue
        request = final(job.pending[0])
        llm = backends.get(request.llm)
        if llm is None:
            raise ConfigError(f"a request names backend '{request.llm}', which this method does not have")
        if not stream:
            completion = llm.chat(request.messages, request.params)
        else:
            completion = None
            for piece in llm.stream(request.messages, request.params):
                if isinstance(piece, Completion):
                    completion = piece
                else:
                    yield piece
            if completion is None:
                raise BackendError(f"backend '{request.llm}' ended a stream without its completion")
        result = _advance(job, [completion])
        if result is None:
            raise TypeError(f"a method plan asked for more requests after its final stage '{final_stage}'")
    return result, completion


class Engine:
    """Runs plans with up to ``window`` in flight; yields ``(index, answer, seconds)`` in input order.

    ``seconds`` is the example's share of the wall time: each step's time is split evenly over the
    plans in flight, so the shares of a run add up to its wall time. ``progress`` (optional, e.g. a
    ``personalign.engine.progress.RequestProgress``) hears of every plan started, every batch of requests
    submitted and collected, and every plan finished, as it happens (not in input order).
    """

    def __init__(self, backends: dict[str, Any], window: int | None = None):
        window = window_for(backends) if window is None else window
        if window < 1:
            raise ConfigError(f"engine window must be at least 1, got {window}")
        self.backends, self.window = backends, window

    def run(self, plans: Iterable[Any], progress: Any = None) -> Iterator[tuple[int, Answer, float]]:
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
                if progress is not None:
                    progress.started()
                answer = _advance(job, None)
                if answer is None:
                    active.append(job)
                    moved.append(job)
                else:
                    done[index] = (answer, 0.0)
                    if progress is not None:
                        progress.finished(0)
            if moved:  # everything the moved plans asked for, batched together
                futures = submit_requests([r for job in moved for r in job.pending], self.backends)
                offset = 0
                for job in moved:
                    job.futures = futures[offset:offset + len(job.pending)]
                    offset += len(job.pending)
                    job.requests += len(job.pending)
                if progress is not None:
                    progress.submitted(len(futures))
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
                    completions = [f.result() for f in job.futures]
                    if progress is not None:
                        progress.completed(completions)
                    answer = _advance(job, completions)
                    if answer is None:
                        moved.append(job)
                    else:
                        active.remove(job)
                        done[job.index] = (answer, job.seconds)
                        if progress is not None:
                            progress.finished(job.requests)
            while next_out in done:
                answer, seconds = done.pop(next_out)
                yield next_out, answer, seconds
                next_out += 1
            if exhausted and not active and not done:
                return
