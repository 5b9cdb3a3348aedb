"""The one interface every method implements: an example and a profile in, an answer with its trace out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from personalign.backends.base import LLM
from personalign.errors import ConfigError
from personalign.retrievers.base import Retriever, build_query
from personalign.tasks.parsing import final_answer_segment, parse_output
from personalign.tasks.spec import TaskSpec
from personalign.types import Answer, Example, GenParams, ProfileItem, Trace

COT_INSTRUCTION = (
    "\nFirst think step by step in at most three short sentences about what this user would answer. "
    "Then write the final answer on a new line that starts with 'Answer:'."
)


@dataclass
class MethodConfig:
    """Hyperparameters shared by the baseline methods (every one is recorded in run manifests)."""

    k: int = 4
    item_max_words: int = 40
    max_new_tokens: int | None = None
    cot_max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    summary_items: int = 10
    summary_max_tokens: int = 64


class Method(ABC):
    """Base class: holds the task, LLM, retriever and config, and offers prompt/LLM helpers."""

    needs_llm: bool = True
    cot: bool = False

    def __init__(
        self,
        task: TaskSpec,
        llm: LLM | None = None,
        retriever: Retriever | None = None,
        config: MethodConfig | None = None,
        cache_dir: str | Path | None = None,
    ):
        if self.needs_llm and llm is None:
            raise ConfigError(f"method {type(self).__name__} needs an LLM backend")
        self.task, self.llm, self.retriever = task, llm, retriever
        self.config = config or MethodConfig()
        self.cache_dir = Path(cache_dir) if cache_dir else None

    @abstractmethod
    def answer(self, example: Example, profile: Sequence[ProfileItem]) -> Answer:
        """Answer ``example`` for the user whose history is ``profile``."""

    def params(self, max_tokens: int | None = None) -> GenParams:
        default = self.config.cot_max_new_tokens if self.cot else self.config.max_new_tokens or self.task.max_new_tokens
        return GenParams(
            max_tokens=max_tokens or default,
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            seed=self.config.seed,
        )

    def ask(self, prompt: str, trace: Trace, max_tokens: int | None = None) -> str:
        """Send one user prompt to the LLM, record the call in ``trace`` and return the raw text."""
        assert self.llm is not None
        messages = [{"role": "user", "content": prompt + (COT_INSTRUCTION if self.cot else "")}]
        completion = self.llm.chat(messages, self.params(max_tokens))
        trace.record_call(messages, completion)
        return completion.text

    def parse(self, raw: str) -> str:
        """Parse the raw answer; chain-of-thought answers are read after their 'Answer:' marker."""
        return parse_output(self.task, final_answer_segment(raw) if self.cot else raw)

    def retrieve(self, example: Example, profile: Sequence[ProfileItem], trace: Trace, k: int | None = None,
                 base_answer: str | None = None) -> list[ProfileItem]:
        """Top-k profile items for the example's query (LaMP query, optionally ⊕ a base answer)."""
        if self.retriever is None:
            raise ConfigError(f"method {type(self).__name__} needs a retriever")
        items = self.retriever.top_k(build_query(self.task, example.input, base_answer), profile, self.task,
                                     self.config.k if k is None else k)
        trace.retrieved_ids.extend(str(item.get("id", "")) for item in items)
        return items

    def with_items(self, example: Example, items: Sequence[ProfileItem]) -> str:
        """The task input with rendered profile items in front of it."""
        rendered = [self.task.render_item(item, self.config.item_max_words) for item in items]
        return self.task.with_context(example.input, rendered)
