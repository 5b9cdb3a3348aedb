"""PAG: an LLM-written summary of the user's profile (cached per user) plus retrieved items."""

from __future__ import annotations

from personalign.methods.base import Method
from personalign.methods.icl import most_recent
from personalign.store import SqliteStore, stable_hash
from personalign.types import Answer, Trace

SUMMARY_PROMPT = (
    "Here is the history of one user for the task: {description}\n{items}\n\n"
    "In two or three sentences, describe this user's preferences and writing style "
    "that would help predict their next answer. Write only the description."
)


class PAG(Method):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._summaries = SqliteStore(self.cache_dir / "summaries.sqlite", "summary") if self.cache_dir else None
        self._memory: dict[str, str] = {}

    def summarize(self, profile, trace: Trace) -> str:
        """The user's profile summary, written once per (model, task, profile) and cached."""
        items = most_recent(profile, self.config.summary_items)
        key = stable_hash([self.llm.name, self.task.name, [self.task.render_item(i) for i in items]])
        cached = self._memory.get(key) or (self._summaries.get_json(key) if self._summaries is not None else None)
        if cached is None:
            rendered = "\n".join(f"- {self.task.render_item(i, self.config.item_max_words)}" for i in items)
            prompt = SUMMARY_PROMPT.format(description=self.task.description, items=rendered)
            messages = [{"role": "user", "content": prompt}]
            completion = self.llm.chat(messages, self.params(self.config.summary_max_tokens))
            trace.record_call(messages, completion)
            cached = completion.text.strip()
            if self._summaries is not None:
                self._summaries.put_json(key, cached)
        self._memory[key] = cached
        trace.extra["profile_summary"] = cached
        return cached

    def answer(self, example, profile):
        trace = Trace()
        summary = self.summarize(profile, trace) if profile else ""
        items = self.retrieve(example, profile, trace)
        prompt = self.with_items(example, items)
        if summary:
            prompt = f"About this user: {summary}\n\n{prompt}"
        raw = self.ask(prompt, trace)
        return Answer(self.parse(raw), trace)


PLUGIN = PAG
