"""Fake LLM backends for unit tests of orchestration only (never used for reported numbers)."""

from __future__ import annotations

import hashlib

from personalign.backends.base import LLM
from personalign.types import Completion, GenParams, Messages


class FakeHashLLM(LLM):
    """Deterministic fake: answers with a label/number/text derived from a hash of the prompt.

    ``fail_after`` raises KeyboardInterrupt on that call number, to simulate an interrupted run.
    """

    def __init__(self, answers: list[str], fail_after: int | None = None):
        self.name = "fake-hash"
        self.answers, self.fail_after, self.calls = answers, fail_after, 0

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated interrupt")
        digest = int(hashlib.sha256(messages[-1]["content"].encode()).hexdigest(), 16)
        text = self.answers[digest % len(self.answers)]
        return Completion(text=text, prompt_tokens=len(messages[-1]["content"].split()), completion_tokens=1)


class FakeEchoLLM(LLM):
    """Fake for service orchestration tests: answers ``echo: <the last message>``, so a test can see what
    the method put in the prompt; ``fail`` makes every call raise BackendError (a dead upstream)."""

    def __init__(self, fail: bool = False):
        self.name, self.fail, self.prompts = "fake-echo", fail, []

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        from personalign.errors import BackendError

        if self.fail:
            raise BackendError("fake upstream is down")
        self.prompts.append(messages[-1]["content"])
        return Completion(text="echo: " + messages[-1]["content"], prompt_tokens=len(messages[-1]["content"].split()),
                          completion_tokens=3)
