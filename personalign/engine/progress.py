"""Truthful progress for the engine: counted in requests as they complete, with an ETA from uncached work.

A multi-stage method (PAG, RPM, HYDRA, RPO) finishes its examples only at the end of a window of plans in
flight, so a bar of finished examples sits at 0% for most of the run. ``RequestProgress`` counts requests
instead, as the engine collects them; its total is estimated (done + the mean requests of a finished
example for each unfinished one) and becomes exact as examples finish. The ETA divides the requests left by
the rate of *uncached* requests measured after the first one completed: the first (model loading, worker
start-up) and cache hits (answered at once) would otherwise make it far too long or far too short.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm

from personalign.types import Completion

SHOW_AFTER_SECONDS = 1.0  # work that ends sooner prints no bar (references, fully cached methods)


def clock_text(seconds: float) -> str:
    """``mm:ss`` (or ``h:mm:ss``) like tqdm."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class RequestProgress:
    """Engine events in, a bar of requests out (``requests=False``: a bar of examples, for methods without an LLM).

    Events (called by ``Engine.run``): ``started()`` per plan, ``submitted(n)`` per batch of requests sent,
    ``completed(completions)`` per batch collected, ``finished(requests)`` per plan done with its request count.
    """

    def __init__(self, examples: int, desc: str, done_before: int = 0, requests: bool = True,
                 clock: Callable[[], float] = time.monotonic, file: Any = None, show_after: float | None = None):
        self.examples, self.done_before, self.requests, self.clock = examples, done_before, requests, clock
        self.started_plans = self.finished_plans = 0
        self.submitted_requests = self.completed_requests = self.cached = self.finished_requests = 0
        self.first_uncached_at: float | None = None
        self.uncached_since_first = 0
        unit = "requests" if requests else "examples"
        delay = SHOW_AFTER_SECONDS if show_after is None else show_after
        bar_format = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} " + unit + " [{elapsed}{postfix}]"
        self.bar = tqdm(total=self.total(), desc=desc, file=file or sys.stderr, delay=delay, dynamic_ncols=True,
                        bar_format=bar_format)

    # ------------------------------------------------------------ what the bar says

    def total(self) -> int:
        """Requests (or examples) this run will take: exact once every example has finished, estimated before."""
        todo = self.examples - self.done_before
        if not self.requests:
            return todo
        if self.finished_plans:
            per_example = self.finished_requests / self.finished_plans
        elif self.started_plans:
            per_example = self.submitted_requests / self.started_plans
        else:
            per_example = 1.0
        estimate = self.finished_requests + round(per_example * (todo - self.finished_plans))
        return max(estimate, self.submitted_requests, self.completed_requests)

    def done(self) -> int:
        return self.completed_requests if self.requests else self.finished_plans

    def eta_seconds(self) -> float | None:
        """Seconds left at the rate of uncached work since the first uncached completion; None before a rate exists."""
        if self.first_uncached_at is None or self.uncached_since_first == 0:
            return None
        elapsed = self.clock() - self.first_uncached_at
        if elapsed <= 0:
            return None
        return (self.total() - self.done()) * elapsed / self.uncached_since_first

    def postfix(self) -> str:
        eta = self.eta_seconds()
        parts = [f"ETA {clock_text(eta) if eta is not None else '?'}"]
        if self.requests:
            parts.append(f"{self.done_before + self.finished_plans}/{self.examples} examples")
            if self.cached:
                parts.append(f"{self.cached} cached")
        elif self.done_before:
            parts.append(f"{self.done_before} done before")
        return ", ".join(parts)

    def _refresh(self) -> None:
        self.bar.total = self.total()
        self.bar.n = self.done()
        self.bar.set_postfix_str(self.postfix(), refresh=False)
        self.bar.update(0)

    # ------------------------------------------------------------ engine events

    def started(self) -> None:
        self.started_plans += 1

    def submitted(self, count: int) -> None:
        self.submitted_requests += count

    def completed(self, completions: Sequence[Completion]) -> None:
        now, fresh = self.clock(), sum(1 for c in completions if not c.cached)
        self.completed_requests += len(completions)
        self.cached += len(completions) - fresh
        if fresh and self.first_uncached_at is None:
            self.first_uncached_at = now  # the first (slow) batch only starts the clock
        elif fresh:
            self.uncached_since_first += fresh
        if not self.requests:
            return
        self._refresh()

    def finished(self, requests: int) -> None:
        self.finished_plans += 1
        self.finished_requests += requests
        if not self.requests and self.first_uncached_at is None:
            self.first_uncached_at = self.clock()
        elif not self.requests:
            self.uncached_since_first += 1
        self._refresh()

    def close(self) -> None:
        self._refresh()
        self.bar.close()

    def __enter__(self) -> "RequestProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
