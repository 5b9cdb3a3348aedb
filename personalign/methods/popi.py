"""POPI: a summarizer distils the user's history into a short preference summary that conditions the
generator (arXiv 2510.17881; ``personalign.popi``).

Options: ``summarizer`` (``base``: the base LLM, the untrained case; ``bundled``; a trained folder or
``.gguf`` from ``personalign train popi``; or any backend spec), ``summarizer_options`` (backend
options), ``summary_budget`` (generator tokens; enforced). The history items shown to the summarizer
are ``method_config.summary_items``. A trained summarizer is evaluated with the prompt settings it was
trained with (its stage's ``manifest.json``; :func:`~personalign.methods.base.trained_prompt`). The
generator is the base LLM, so any backend (an API included) can be conditioned on the same summaries.

Summaries are stored per user in ``popi_summaries.sqlite`` under the cache folder, keyed by the
summarizer's identity, the budget and the user's items, so any generator reuses them with no
summarizer call; a summary handed in as ``example.derived["popi_summary"]`` is used as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from personalign.backends import get_llm, model_spec
from personalign.backends.base import LLM
from personalign.config import Settings
from personalign.extras import require_backend
from personalign.methods.base import Method, trained_prompt
from personalign.popi.summary import conditioned_input, enforce_budget, summary_messages
from personalign.store import SqliteStore, profile_key, stable_hash
from personalign.types import Answer, GenParams, Request, Trace


# The settings that shape the summarizer's prompt: a trained summarizer is evaluated with its training's values.
PROMPT_SETTINGS = ("method_config.item_max_words", "method_config.summary_items", "method_options.summary_budget")


class POPIOptions(Settings):
    """POPI's own options (``method_options`` of an eval or service config)."""

    renamed = {"summary_items": "method_config.summary_items"}

    summarizer: str = "base"                  # "base" (the base model), a trained folder, .gguf or backend spec
    summarizer_llm: LLM | None = None         # a ready backend instead (Python callers and tests)
    summarizer_options: dict[str, Any] = {}   # backend options of the summarizer
    summary_budget: int = Field(48, ge=1)     # tokens of the summary


class POPI(Method):
    """Preference summary (once per user, stored), then the summary-conditioned answer."""

    derived_key = "popi_summary"

    Options = POPIOptions

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        o = self.options
        cache = self.cache_dir / "llm.sqlite" if self.cache_dir else None
        if o.summarizer_llm is not None:
            self.summarizer_llm = o.summarizer_llm
        elif o.summarizer == "base":
            self.summarizer_llm = self.llm
        else:
            self.config, self.options = trained_prompt("summarizer", o.summarizer, self.config, o, PROMPT_SETTINGS)
            require_backend(model_spec(o.summarizer), "POPI's summarizer model")
            self.summarizer_llm = get_llm(model_spec(o.summarizer), cache_path=cache, **o.summarizer_options)
        self.summary_budget, self.summary_items = self.options.summary_budget, self.config.summary_items
        self.store = SqliteStore(Path(self.cache_dir) / "popi_summaries.sqlite", table="summaries") if self.cache_dir else None

    def backends(self) -> dict[str, Any]:
        return {"base": self.llm, "summarizer": self.summarizer_llm}

    @property
    def derived_items(self) -> int:
        return self.summary_items

    def derive(self, profile, previous: str | None, trace: Trace):
        """The budgeted summary as derived data (written whole; ``previous`` is not needed)."""
        return (yield from self.summarize(profile, trace))

    def _key(self, profile) -> str:
        return stable_hash([self.summarizer_llm.identity(), self.summary_budget, self.summary_items,
                            self.config.item_max_words, self.config.seed, profile_key(profile)])[:32]

    def summarize(self, profile, trace: Trace):
        """The user's budgeted summary (``summary = yield from self.summarize(...)``), stored once written."""
        key = self._key(profile)
        stored = self.store.get_json(key) if self.store is not None else None
        if stored is not None:
            trace.extra["popi_summary_source"] = "stored"
            return stored["summary"]
        messages = summary_messages(self.task, profile, self.summary_items, self.config.item_max_words,
                                    self.summary_budget)
        # room for the words a summarizer with another tokenizer may spend; the budget is enforced below
        params = GenParams(max_tokens=2 * self.summary_budget, temperature=0.0, seed=self.config.seed)
        raw = yield from self.request(Request(messages, params, stage="summarize", llm="summarizer"), trace)
        summary = enforce_budget(raw, self.summary_budget, self.llm.count_tokens)
        if self.store is not None:
            self.store.put_json(key, {"summary": summary})
        trace.extra["popi_summary_source"] = "new"
        return summary

    def plan(self, example, profile):
        trace = Trace()
        if "popi_summary" in example.derived:
            summary = enforce_budget(example.derived["popi_summary"], self.summary_budget, self.llm.count_tokens)
            trace.extra["popi_summary_source"] = "derived"
        else:
            summary = (yield from self.summarize(profile, trace)) if profile else ""
        trace.extra["popi_summary"] = summary
        trace.extra["popi_summary_tokens"] = self.llm.count_tokens(summary) if summary else 0
        raw = yield from self.ask(conditioned_input(example.input, summary), trace)
        return Answer(raw, trace, self.output_filter)


PLUGIN = POPI
