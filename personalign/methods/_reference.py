"""Shared parts of the non-LLM references a practitioner tries first (no LLM, no training)."""

from __future__ import annotations

from typing import Sequence

from personalign.errors import ConfigError
from personalign.methods.base import Method
from personalign.tasks.spec import TaskSpec
from personalign.types import Answer, Example, ProfileItem, Trace


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


def nearest_output(method: Method, example: Example, profile: Sequence[ProfileItem], trace: Trace) -> str:
    """The user's answer in the history item the retriever ranks first for the query ("" without history)."""
    items = method.retrieve(example, profile, trace, k=1) if profile else []
    return method.task.item_output(items[0]) or "" if items else ""
