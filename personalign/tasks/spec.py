"""A task declared as data: prompts, profile rendering, output parsing rules and metrics."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

TaskKind = Literal["classification", "rating", "generation"]
FieldQuoting = Literal["none", "json"]


def _truncate_words(value: Any, max_words: int | None) -> str:
    text = " ".join(str(value).split())
    if max_words is None:
        return text
    words = text.split(" ")
    return text if len(words) <= max_words else " ".join(words[:max_words]) + " ..."


@lru_cache(maxsize=None)
def _fields(template: str) -> tuple[str, ...]:
    """The field names a ``str.format`` template uses."""
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


@dataclass(frozen=True)
class TaskSpec:
    """Everything Personalign needs to know about one LaMP-style task.

    Templates use ``str.format`` fields: ``input_template`` takes ``{input}``; ``item_template``
    and ``doc_template`` take the profile item's fields; ``context_template`` takes ``{items}``
    (rendered items joined with ``item_separator``) and ``{input}``. ``field_quoting: json`` writes each
    item field as a JSON string (its quotes, backslashes and control characters escaped), so an item's own
    text can never close its quoting; the LaMP tasks keep their published formats (``none``).
    """

    name: str
    kind: TaskKind
    description: str
    input_template: str
    query_markers: tuple[str, ...]
    profile_fields: tuple[str, ...]
    item_template: str
    doc_template: str
    context_template: str
    metrics: tuple[str, ...]
    max_new_tokens: int
    input_field: str | None = None
    output_field: str | None = None
    labels: tuple[str, ...] = ()
    item_separator: str = ", and "
    rating_range: tuple[float, float] = (1.0, 5.0)
    field_quoting: FieldQuoting = "none"

    def __post_init__(self) -> None:
        if self.field_quoting not in ("none", "json"):
            raise TypeError(f"field_quoting must be 'none' or 'json', not {self.field_quoting!r}")

    def render_item(self, item: dict[str, Any], max_words: int | None = None) -> str:
        """Render one profile item as a short sentence for a prompt."""
        used = _fields(self.item_template)
        fields = {k: self.quote(_truncate_words(v, max_words)) for k, v in item.items() if k in used}
        return self.item_template.format(**fields)

    def quote(self, text: str) -> str:
        """A field's text as the task's prompts write it: as is, or a JSON string (``field_quoting``)."""
        if self.field_quoting == "none":
            return text
        return json.dumps(text, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")

    def item_document(self, item: dict[str, Any]) -> str:
        """The text of a profile item that retrievers index."""
        return self.doc_template.format(**{k: " ".join(str(item.get(k, "")).split()) for k in _fields(self.doc_template)})

    def item_output(self, item: dict[str, Any]) -> str | None:
        """The user's own 'answer' stored in a profile item (its tag, score, title...)."""
        return None if self.output_field is None else str(item.get(self.output_field, ""))

    def with_context(self, task_input: str, rendered_items: list[str]) -> str:
        """Put rendered profile items in front of the task input, LaMP style."""
        if not rendered_items:
            return task_input
        return self.context_template.format(items=self.item_separator.join(rendered_items), input=task_input)

    def format_input(self, text: str) -> str:
        """Wrap raw user text (a review, an abstract...) in the task's official input template."""
        prefix = self.input_template.split("{input}")[0]
        return text if prefix and text.startswith(prefix) else self.input_template.format(input=text)

    def query_text(self, task_input: str) -> str:
        """LaMP's retrieval query: the text after the task's marker, else after the first ':'."""
        for marker in self.query_markers:
            position = task_input.find(marker)
            if position >= 0:
                return task_input[position + len(marker):].strip()
        head, sep, tail = task_input.partition(":")
        return tail.strip() if sep else task_input.strip()
