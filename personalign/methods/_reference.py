"""Shared parts of the non-LLM references a practitioner tries first (no LLM, no training)."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Sequence

from personalign.errors import ConfigError
from personalign.methods.base import Method
from personalign.tasks.parsing import parse_label, rating_values
from personalign.tasks.spec import TaskSpec
from personalign.types import Answer, Example, ProfileItem, Trace


def majority(values: Sequence[str]) -> str:
    """The most common value; ties go to the one seen last (the most recent in a profile)."""
    if not values:
        return ""
    counts = Counter(values)
    top = max(counts.values())
    return next(v for v in reversed(values) if counts[v] == top)


def number_text(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def user_labels(task: TaskSpec, profile: Sequence[ProfileItem]) -> list[str]:
    """The user's past answers as task labels (classification) or rating strings (rating)."""
    outputs = [task.item_output(item) or "" for item in profile]
    if task.kind == "rating":
        return [number_text(v) for v in rating_values(outputs)]
    labels = [parse_label(o, task.labels) for o in outputs]
    return [label for label in labels if label in task.labels]


class Reference(Method):
    """A non-LLM reference: ``predict`` gives the answer; ``kinds`` are the task kinds it applies to."""

    needs_llm = False
    kinds: tuple[str, ...] = ("classification", "rating", "generation")

    @classmethod
    def applies_to(cls, task: TaskSpec) -> bool:
        return task.kind in cls.kinds

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.applies_to(self.task):
            raise ConfigError(f"method {type(self).__name__} applies to {'/'.join(self.kinds)} tasks, "
                              f"not to {self.task.name} ({self.task.kind})")

    @property
    def output_filter(self) -> str:
        return "exact"

    def predict(self, example: Example, profile: Sequence[ProfileItem], trace: Trace) -> str:
        raise NotImplementedError

    def plan(self, example, profile):
        trace = Trace()
        text = self.predict(example, profile, trace)
        trace.extra["reference"] = type(self).__name__
        yield from ()  # a plan with no LLM requests
        return Answer(text or "", trace, self.output_filter)


def user_rating_stat(profile: Sequence[ProfileItem], task: TaskSpec, how: str) -> str:
    values = rating_values([task.item_output(item) or "" for item in profile])
    if not values:
        return ""
    return number_text(statistics.fmean(values) if how == "mean" else statistics.median(values))


def nearest_output(method: Method, example: Example, profile: Sequence[ProfileItem], trace: Trace) -> str:
    """The user's answer in the history item the retriever ranks first for the query ("" without history)."""
    items = method.retrieve(example, profile, trace, k=1) if profile else []
    return method.task.item_output(items[0]) or "" if items else ""
