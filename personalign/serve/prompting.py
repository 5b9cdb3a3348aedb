"""A client's system messages on the personalized path: they stay system messages.

The method builds its own prompt (the user's history as data, then the conversation); the client's
``system`` (and ``developer``) messages go ahead of it as system messages, in every request the method
sends to the base model for that answer, never flattened into user text. See docs/serve.md, "The prompt format".
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from personalign.backends.base import LLM
from personalign.types import Completion, GenParams, Messages

SYSTEM_ROLES = ("system", "developer")  # OpenAI's "developer" is the system message of newer models


class SystemFirst(LLM):
    """The base backend, with the client's system messages put ahead of every conversation sent to it."""

    def __init__(self, llm: LLM, system: Messages):
        self.llm, self.system = llm, list(system)
        self.name, self.parallelism, self.asynchronous = llm.name, llm.parallelism, llm.asynchronous
        self.openai_fields, self.content_types = llm.openai_fields, llm.content_types

    def _first(self, messages: Messages) -> Messages:
        return [*self.system, *messages]

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        return self.llm.chat(self._first(messages), params)

    def chat_batch(self, batch: list[Messages], params: GenParams | None = None) -> list[Completion]:
        return self.llm.chat_batch([self._first(m) for m in batch], params)

    def submit_batch(self, batch: list[Messages], params: GenParams | None = None) -> list[Future]:
        return self.llm.submit_batch([self._first(m) for m in batch], params)

    def stream(self, messages: Messages, params: GenParams | None = None) -> Iterator[str | Completion]:
        return self.llm.stream(self._first(messages), params)

    def count_tokens(self, text: str) -> int:
        return self.llm.count_tokens(text)

    def identity(self) -> dict[str, Any]:
        return self.llm.identity()
