"""One personalized completion: the user's history from the store, then a Personalign method on it.

The method is the same object ``personalign eval`` runs (RPO: base answer, retrieval with q ⊕ A_base,
reflection; RAG: retrieval, then one generation), so the service and the benchmarks share their code.
The service's backends run without an answer cache, so a deleted history item cannot live on in one.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personalign.backends import get_llm
from personalign.backends.base import LLM
from personalign.errors import BackendError
from personalign.methods import base_name, build_method
from personalign.methods.base import MethodConfig
from personalign.retrievers import get_retriever
from personalign.retrievers.base import Retriever
from personalign.serve.config import ServeConfig
from personalign.store import stable_hash
from personalign.tasks import get_task
from personalign.tasks.filters import parse_reflection
from personalign.types import Example, GenParams

CHAT_TASK = Path(__file__).parent / "chat.yaml"
# method options the service sets unless its config does: no in-memory embeddings of deleted items
SERVICE_OPTIONS: dict[str, dict[str, Any]] = {"rpm": {"encoder_memory": 0}}
LOG = logging.getLogger("personalign.serve")


class UpstreamError(Exception):
    """The base model failed or timed out (answered as HTTP 502 in the OpenAI error shape)."""


def message_text(content: Any) -> str:
    """A chat message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def conversation_input(messages: list[dict[str, Any]], earlier: int) -> str:
    """The last user message, after up to ``earlier`` messages that came before it in the conversation."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last is None:
        return ""
    query = message_text(messages[last].get("content"))
    before = [f"{m.get('role')}: {message_text(m.get('content'))}" for m in messages[max(0, last - earlier):last]
              if earlier and message_text(m.get("content"))]
    if not query or not before:
        return query
    return "Earlier in this conversation:\n" + "\n".join(before) + f"\n\nThe user's new message: {query}"


@dataclass
class Result:
    """What the service returns and records for one request."""

    request_id: str
    text: str
    base_answer: str = ""
    retrieved_ids: list[str] = field(default_factory=list)
    thinking: str = ""
    fallback: str = ""                 # why the base answer was returned instead, if it was
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stages: list[str] = field(default_factory=list)
    summary_version: int | None = None  # the derived-data version used (PAG, POPI, RPM), None before the first build
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per service stage (set by the app)


class Personalizer:
    """Builds the base backend and the method once; answers requests (thread-safe)."""

    def __init__(self, config: ServeConfig, base_llm: LLM | None = None, metrics: Any = None,
                 retriever: Retriever | None = None):
        self.config, self.metrics = config, metrics
        self.task = get_task(str(CHAT_TASK))
        self.llm = base_llm or get_llm(config.base_llm, **config.base_llm_options)
        self.method_name = config.method_name()
        options = {**SERVICE_OPTIONS.get(base_name(self.method_name), {}), **config.method_options}
        self.method = build_method(self.method_name, self.task, llm=self.llm, retriever=retriever or get_retriever(config.retriever),
                                   config=MethodConfig(k=config.k), **options)
        # per-user derived data (PAG/POPI summary, RPM user model), built in the background; versions made
        # with other models or another method are not used
        self.derived_key = self.method.derived_key
        self.derived_id = (f"{self.derived_key}:{stable_hash(self.method.identity())[:32]}"
                           if self.derived_key else None)
        # in-process models are not thread-safe; HTTP backends take concurrent requests
        self.lock: Any = threading.Lock() if not getattr(self.llm, "asynchronous", False) else contextlib.nullcontext()

    def base(self, messages: list[dict[str, Any]], max_tokens: int | None,
             sampling: dict[str, Any] | None = None) -> tuple[str, int, int]:
        """The base model's answer to the conversation as sent (no personalization)."""
        params = GenParams(max_tokens=max_tokens or self.task.max_new_tokens, **(sampling or {}))
        chat = [{"role": m["role"], "content": message_text(m.get("content"))} for m in messages]
        try:
            with self.lock:
                completion = self.llm.chat_batch([chat], params)[0]
        except BackendError as exc:
            LOG.warning("base model failed: %s", exc)
            raise UpstreamError(str(exc)) from None
        return completion.text, completion.prompt_tokens, completion.completion_tokens

    def answer(self, messages: list[dict[str, Any]], profile: list[dict[str, Any]], max_tokens: int | None = None,
               personalize: bool = True, summary: dict[str, Any] | None = None,
               sampling: dict[str, Any] | None = None) -> Result:
        """Personalize the answer to the last user message (after the earlier turns the config allows) with
        ``profile`` and the method's stored derived data, ``summary`` (never built: none); fall back to the
        base answer. ``sampling``: the request's ``temperature``, ``top_p`` and ``seed`` (absent: the method's)."""
        sampling = sampling or {}
        start, request_id = time.perf_counter(), "chatcmpl-" + uuid.uuid4().hex[:24]
        query = conversation_input(messages, self.config.context_messages)
        if not personalize or not query:
            text, prompt, completion = self.base(messages, max_tokens, sampling)
            return Result(request_id, text, base_answer=text, fallback="" if personalize else "no user",
                          prompt_tokens=prompt, completion_tokens=completion, stages=["base"],
                          seconds=time.perf_counter() - start)
        derived = {self.derived_key: summary["text"] if summary else ""} if self.derived_key else {}
        example = Example(id=request_id, input=query, profile=profile, derived=derived)
        method = self.method
        overrides = {**sampling, **({"max_new_tokens": max_tokens} if max_tokens else {})}
        if overrides:  # the request's settings for this answer: a shallow copy shares the models
            method = copy.copy(self.method)
            method.config = dataclasses.replace(self.method.config, **overrides)
        try:
            with self.lock:
                answer = method.answer(example, profile)
            final = method.final(answer)
        except BackendError as exc:
            LOG.warning("base model failed: %s", exc)
            raise UpstreamError(str(exc)) from None
        except Exception as exc:  # personalization failed: the base answer, logged and counted
            if not self.config.fallback_to_base:
                raise
            LOG.warning("personalization failed (%s: %s); answering with the base answer", type(exc).__name__, exc)
            if self.metrics:
                self.metrics.fallbacks.labels(reason=type(exc).__name__).inc()
            text, prompt, completion = self.base(messages, max_tokens, sampling)
            return Result(request_id, text, base_answer=text, fallback=f"error: {type(exc).__name__}: {exc}"[:64],
                          prompt_tokens=prompt, completion_tokens=completion, stages=["base"],
                          seconds=time.perf_counter() - start)
        trace = answer.trace
        reflection = parse_reflection(answer.raw)
        if final.fallback and self.metrics:
            self.metrics.fallbacks.labels(reason="malformed").inc()
        return Result(request_id, final.prediction, base_answer=str(trace.extra.get("base_answer", "")),
                      retrieved_ids=list(trace.retrieved_ids), thinking=reflection[0] if reflection else "",
                      fallback="malformed output" if final.fallback else "", prompt_tokens=trace.prompt_tokens,
                      completion_tokens=trace.completion_tokens, stages=list(trace.stages),
                      summary_version=summary["version"] if summary else None, seconds=time.perf_counter() - start)

    def close(self) -> None:
        if hasattr(self.llm, "close"):
            self.llm.close()

