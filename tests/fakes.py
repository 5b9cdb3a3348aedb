"""Fake LLM backends for unit tests of orchestration only (never used for reported numbers)."""

from __future__ import annotations

import hashlib
import json

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
    the method put in the prompt (``conversations``: every call's whole message list, roles included); ``fail``
    makes every call raise BackendError (a dead upstream)."""

    def __init__(self, fail: bool = False):
        self.name, self.fail, self.prompts, self.params = "fake-echo", fail, [], []
        self.conversations: list[Messages] = []

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        from personalign.errors import BackendError

        if self.fail:
            raise BackendError("fake upstream is down")
        self.prompts.append(messages[-1]["content"])
        self.conversations.append([dict(m) for m in messages])
        self.params.append(params)
        return Completion(text="echo: " + messages[-1]["content"], prompt_tokens=len(messages[-1]["content"].split()),
                          completion_tokens=3)


VOCAB = ["jazz", "piano", "rock", "guitar", "angry", "happy", "refund", "broken"]


class FakeRuleLLM(LLM):
    """Fake for orchestration: features are the vocabulary words in the example; ``bad`` words make the first
    (or every, with ``always_bad``) extraction malformed; paths and answers are fixed strings."""

    def __init__(self, bad: tuple[str, ...] = (), always_bad: tuple[str, ...] = ()):
        self.name, self.bad, self.always_bad, self.prompts = "fake-rule", bad, always_bad, []

    def _generate(self, messages: Messages, params: GenParams) -> Completion:
        prompt = messages[-1]["content"]
        self.prompts.append(prompt)
        if "Reply only with a JSON object" in prompt:
            case = prompt.split("\n\nList")[0]
            retry = "not valid JSON" in prompt
            if any(w in case for w in self.always_bad) or (not retry and any(w in case for w in self.bad)):
                return Completion("features: jazz, maybe", 10, 4)
            words = [w for w in VOCAB if w in case.lower()] or ["plain"]
            return Completion(json.dumps({"features": words}), 10, 4)
        if "explain how these features" in prompt:
            return Completion("Because of " + prompt.split("Features: ")[1].split("\n")[0], 10, 6)
        return Completion("Short thought.\nAnswer: 5", 10, 3)
