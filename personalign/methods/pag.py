"""PAG: an LLM-written summary of the user's profile plus retrieved items.

The summary is one more request. The LLM cache keys it by model, prompt and parameters, so each
user's summary is written once, and a cache hit still records its prompt and completion tokens.
A summary stored beforehand (``example.derived["profile_summary"]``, as the service keeps one per
user) is used as it is, with no request.
"""

from __future__ import annotations

from personalign.methods.base import Method
from personalign.retrievers.ranking import most_recent
from personalign.types import Answer, Trace

SUMMARY_PROMPT = (
    "Here is the history of one user for the task: {description}\n{items}\n\n"
    "In two or three sentences, describe this user's preferences and writing style "
    "that would help predict their next answer. Write only the description."
)


class PAG(Method):
    derived_key = "profile_summary"

    @property
    def derived_items(self) -> int:
        return self.config.summary_items

    def derive(self, profile, previous: str | None, trace: Trace):
        """The profile summary as derived data (``previous`` is not needed: a summary is rewritten whole)."""
        return (yield from self.summarize(profile, trace))

    def summarize(self, profile, trace: Trace):
        """Request the user's profile summary (``summary = yield from self.summarize(...)``)."""
        items = most_recent(profile, self.config.summary_items)
        rendered = "\n".join(f"- {self.task.render_item(i, self.config.item_max_words)}" for i in items)
        prompt = SUMMARY_PROMPT.format(description=self.task.description, items=rendered)
        summary = (yield from self.ask(prompt, trace, self.config.summary_max_tokens, stage="summary", cot=False)).strip()
        trace.extra["profile_summary"] = summary
        return summary

    def plan(self, example, profile):
        trace = Trace()
        if "profile_summary" in example.derived:
            summary = trace.extra["profile_summary"] = example.derived["profile_summary"]
        else:
            summary = (yield from self.summarize(profile, trace)) if profile else ""
        items = self.retrieve(example, profile, trace)
        prompt = self.with_items(example, items)
        if summary:
            prompt = f"About this user: {summary}\n\n{prompt}"
        raw = yield from self.ask(prompt, trace)
        return Answer(raw, trace, self.output_filter)


PLUGIN = PAG
