"""The interface every LLM backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import Future

from personalign.types import Completion, GenParams, Messages


class LLM(ABC):
    """A chat LLM reached in-process or over HTTP.

    Subclasses implement ``_generate`` (one call) and may override ``chat_batch`` for real
    batching. ``name`` identifies the model (and its file) in cache keys and manifests.
    """

    name: str = "llm"
    parallelism: int = 1  # requests it can work on at once (the engine keeps 8x this many in flight)
    asynchronous: bool = False  # submit_batch returns before the answers are in
    # OpenAI request fields (``GenParams.openai``) this backend gives its model; the service refuses the others
    openai_fields: frozenset[str] = frozenset()
    # message content part types it takes (None: any, passed on as sent); text parts are joined for the rest
    content_types: frozenset[str] | None = frozenset({"text"})

    @abstractmethod
    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        """Run one chat completion."""

    def chat(self, messages: Messages, params: GenParams | None = None) -> Completion:
        """Answer one chat conversation."""
        return self._generate(messages, params or GenParams())

    def chat_batch(self, batch: list[Messages], params: GenParams | None = None) -> list[Completion]:
        """Answer several conversations; the default runs them one after another."""
        return [self.chat(messages, params) for messages in batch]

    def stream(self, messages: Messages, params: GenParams | None = None) -> Iterator[str | Completion]:
        """Answer one conversation incrementally: text pieces as they are generated, then the Completion.

        The default (backends that cannot stream: transformers, fakes) generates the whole answer and
        yields it as one piece; llama.cpp and HTTP backends yield tokens as they come.
        """
        completion = self.chat(messages, params)
        if completion.text:
            yield completion.text
        yield completion

    def submit_batch(self, batch: list[Messages], params: GenParams | None = None) -> list[Future]:
        """Start answering several conversations; one future each, in input order.

        The default answers the whole batch now (``chat_batch``) and returns finished futures; HTTP
        and worker-pool backends return at once and finish the futures as replies arrive.
        """
        futures: list[Future] = []
        try:
            completions = self.chat_batch(batch, params)
        except Exception as exc:  # noqa: BLE001 - handed to the caller through the futures
            completions, error = None, exc
        for i in range(len(batch)):
            future: Future = Future()
            if completions is None:
                future.set_exception(error)
            else:
                future.set_result(completions[i])
            futures.append(future)
        return futures

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` for this model (a rough word-based estimate by default)."""
        return max(1, round(len(text.split()) * 1.3))

    def identity(self) -> dict:
        """Everything about this backend that can change a completion (cache keys and run keys).

        Transport settings (timeouts, retries, concurrency, worker count) are left out on purpose.
        """
        return {"name": self.name}

    def close(self) -> None:
        """Release what the backend holds (connections, worker processes); the default holds nothing."""

    def describe(self) -> dict:
        """Identity of the backend for run manifests."""
        return {"backend": type(self).__name__, "name": self.name}
