"""Non-LLM user priors: the user's majority label, mean rating, or nearest history output."""

from __future__ import annotations

from collections import Counter

from personalign.methods.base import Method
from personalign.tasks.parsing import parse_label, rating_values
from personalign.types import Answer, Trace


class UserPrior(Method):
    needs_llm = False

    def answer(self, example, profile):
        trace = Trace()
        outputs = [self.task.item_output(item) or "" for item in profile]
        if self.task.kind == "classification":
            text = self._majority_label(outputs)
        elif self.task.kind == "rating":
            text = self._mean_rating(outputs)
        else:
            items = self.retrieve(example, profile, trace, k=1) if profile else []
            text = self.task.item_output(items[0]) if items else ""
        trace.extra["prior"] = self.task.kind
        return Answer(text or "", trace)

    def _majority_label(self, outputs: list[str]) -> str:
        labels = [parse_label(o, self.task.labels) for o in outputs]
        labels = [label for label in labels if label in self.task.labels]
        if not labels:
            return ""
        counts = Counter(labels)
        top = max(counts.values())
        return next(label for label in reversed(labels) if counts[label] == top)

    def _mean_rating(self, outputs: list[str]) -> str:
        values = rating_values(outputs)
        return f"{sum(values) / len(values):.2f}".rstrip("0").rstrip(".") if values else ""

PLUGIN = UserPrior
