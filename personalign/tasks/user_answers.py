"""A user's past answers read as the task's labels or ratings: the statistics the non-LLM references and the
diagnostics share."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Sequence

from personalign.tasks.parsing import parse_label, rating_values
from personalign.tasks.spec import TaskSpec
from personalign.types import ProfileItem


def majority(values: Sequence[str]) -> str:
    """The most common value; ties go to the one seen last (the most recent in a profile)."""
    if not values:
        return ""
    counts = Counter(values)
    top = max(counts.values())
    return next(v for v in reversed(values) if counts[v] == top)


def number_text(value: float) -> str:
    """A number with at most two decimals and no trailing zeros (``3.50`` -> ``3.5``)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def user_labels(task: TaskSpec, profile: Sequence[ProfileItem]) -> list[str]:
    """The user's past answers as task labels (classification) or rating strings (rating)."""
    outputs = [task.item_output(item) or "" for item in profile]
    if task.kind == "rating":
        return [number_text(v) for v in rating_values(outputs)]
    labels = [parse_label(o, task.labels) for o in outputs]
    return [label for label in labels if label in task.labels]


def user_rating_stat(profile: Sequence[ProfileItem], task: TaskSpec, how: str) -> str:
    """The mean (``how="mean"``) or median of the user's past ratings ("" without any)."""
    values = rating_values([task.item_output(item) or "" for item in profile])
    if not values:
        return ""
    return number_text(statistics.fmean(values) if how == "mean" else statistics.median(values))
