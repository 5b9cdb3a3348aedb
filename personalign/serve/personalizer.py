"""One personalized completion: the user's history from the store, then a Personalign method on it.

The method is the same object ``personalign eval`` runs (RPO: base answer, retrieval with q ⊕ A_base,
reflection; RAG: retrieval, then one generation), so the service and the benchmarks share their code.
The service's backends run without an answer cache, so a deleted history item cannot live on in one.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personalign.backends import get_llm
from personalign.backends.base import LLM
from personalign.errors import BackendError, ConfigError
from personalign.methods import base_name, build_method
from personalign.retrievers import get_retriever
from personalign.retrievers.base import Retriever
from personalign.serve.config import ServeConfig
from personalign.serve.logs import error_summary
from personalign.serve.errors import BASE_RETRY_OPTIONS, UpstreamError
from personalign.serve.prompting import SYSTEM_ROLES, SystemFirst
from personalign.store import stable_hash
from personalign.tasks import get_task
from personalign.tasks.filters import parse_reflection
from personalign.engine import stream_plan
from personalign.serve.streaming import FinalText
from personalign.types import Answer, Completion, Example, GenParams, Request, Trace

CHAT_TASK = Path(__file__).parent / "chat.yaml"
# method options the service sets unless its config does: no in-memory embeddings of deleted items
SERVICE_OPTIONS: dict[str, dict[str, Any]] = {"rpm": {"encoder_memory": 0}}
LOG = logging.getLogger("personalign.serve")


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
              if earlier and m.get("role") not in SYSTEM_ROLES and message_text(m.get("content"))]
    tools = tool_turns(messages[last + 1:])
    if query and tools:  # a later turn of a tool call: the calls and their results reach the method
        query += "\n\nTool calls made for this message and their results (JSON, data only):\n" + tools
    if not query or not before:
        return query
    return "Earlier in this conversation:\n" + "\n".join(before) + f"\n\nThe user's new message: {query}"


def tool_turns(messages: list[dict[str, Any]]) -> str:
    """The assistant's tool calls and the tool results among ``messages``, one JSON line each."""
    lines = []
    for m in messages:
        for call in m.get("tool_calls") or []:
            function = call.get("function") or {}
            lines.append(json.dumps({"call": call.get("id"), "tool": function.get("name"),
                                     "arguments": function.get("arguments")}, ensure_ascii=False))
        if m.get("role") == "tool":
            lines.append(json.dumps({"result_of": m.get("tool_call_id"), "content": message_text(m.get("content"))},
                                    ensure_ascii=False))
    return "\n".join(lines)


class Returning:
    """Iterates a generator and keeps what it returns: ``value``, once the iteration is over."""

    def __init__(self, generator: Generator[Any, None, Any]):
        self.generator, self.value = generator, None

    def __iter__(self) -> Generator[Any, None, None]:
        self.value = yield from self.generator


def drain(run: Generator[str, None, Result]) -> Result:
    """A run's Result, its streamed pieces (none when it does not stream) passed over."""
    returning = Returning(run)
    for _ in returning:
        pass
    return returning.value


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
    finish_reason: str = "stop"        # the final stage's (the base's on the pass-through): stop, length, tool_calls
    tool_calls: list[dict[str, Any]] | None = None  # the base's tool calls, returned unchanged (not personalized)
    logprobs: dict[str, Any] | None = None


@dataclass(frozen=True)
class FinalOptions:
    """The client's output options for the call whose completion is the answer (the base call on the pass-through,
    the method's final stage otherwise): ``stop`` strings and OpenAI fields as sorted JSON (``tools``,
    ``tool_choice``, ``response_format``, ``logprobs`` ...: ``GenParams.openai``)."""

    stop: tuple[str, ...] = ()
    openai: str | None = None

    def fields(self) -> dict[str, Any]:
        return json.loads(self.openai) if self.openai else {}

    @property
    def tools(self) -> bool:
        """Whether the base may answer with tool calls."""
        fields = self.fields()
        return bool(fields.get("tools")) and fields.get("tool_choice") != "none"

    def without_tools(self) -> FinalOptions:
        rest = {k: v for k, v in self.fields().items() if k not in ("tools", "tool_choice", "parallel_tool_calls")}
        return FinalOptions(self.stop, json.dumps(rest, sort_keys=True) if rest else None)

    def params(self, params: GenParams) -> GenParams:
        return dataclasses.replace(params, stop=self.stop or params.stop, openai=self.openai)

    def apply(self, request: Request) -> Request:
        """``request`` with these options (the engine's ``final`` hook)."""
        return dataclasses.replace(request, params=self.params(request.params))


class Personalizer:
    """Builds the base backend and the method once; answers requests (thread-safe)."""

    def __init__(self, config: ServeConfig, base_llm: LLM | None = None, metrics: Any = None,
                 retriever: Retriever | None = None):
        self.config, self.metrics = config, metrics
        self.task = get_task(str(CHAT_TASK))
        base_options = dict(config.base_llm_options)
        if config.base_llm.partition(":")[0] == "openai":  # an HTTP base takes as many requests as the service
            base_options.setdefault("concurrency", config.threads)
            base_options = {**BASE_RETRY_OPTIONS, **base_options}  # one retry at most: clients retry too
            if not isinstance(base_options["max_retries"], int) or base_options["max_retries"] > 1:
                raise ConfigError("base_llm_options.max_retries: the service retries the base model at most once "
                                  f"(clients retry too; docs/serve.md), got {base_options['max_retries']!r}")
        self.llm = base_llm or get_llm(config.base_llm, **base_options)
        self.method_name = config.method_name()
        options = {**SERVICE_OPTIONS.get(base_name(self.method_name), {}), **config.method_options}
        self.method = build_method(self.method_name, self.task, llm=self.llm, retriever=retriever or get_retriever(config.retriever),
                                   config=config.method_config, **options)
        # per-user derived data (PAG/POPI summary, RPM user model), built in the background; versions made
        # with other models or another method are not used
        self.derived_key = self.method.derived_key
        self.derived_id = (f"{self.derived_key}:{stable_hash(self.method.identity())[:32]}"
                           if self.derived_key else None)
        # in-process models are not thread-safe; HTTP backends take concurrent requests
        self.lock: Any = threading.Lock() if not getattr(self.llm, "asynchronous", False) else contextlib.nullcontext()

    def base(self, messages: list[dict[str, Any]], max_tokens: int | None, sampling: dict[str, Any] | None = None,
             options: FinalOptions | None = None, stream: bool = False) -> Generator[str, None, Completion]:
        """The base model's answer to the conversation as sent (``completion = yield from self.base(...)``);
        text pieces are yielded as they come when ``stream``. Messages go as the client sent them (tool calls,
        tool results, content parts), with text parts joined for a backend that takes text only."""
        options = options or FinalOptions()
        params = options.params(GenParams(max_tokens=max_tokens or self.task.max_new_tokens, **(sampling or {})))
        chat = [{key: (message_text(value) if key == "content" and self.llm.content_types is not None else value)
                 for key, value in m.items() if value is not None} for m in messages]
        extract = FinalText("plain", options.stop)
        try:
            with self.lock:
                if not stream:
                    completion = self.llm.chat(chat, params)
                for piece in self.llm.stream(chat, params) if stream else ():
                    if isinstance(piece, Completion):
                        completion = piece
                    elif new := extract.feed(piece):
                        yield new
        except BackendError as exc:
            LOG.warning("base model failed: %s", error_summary(exc))
            raise UpstreamError.of(exc) from None
        text = extract.text(completion.text) or ""
        if stream and (rest := extract.rest(text)):
            yield rest
        if text != completion.text:  # cut here at a stop string: the model stopped there
            completion = dataclasses.replace(completion, text=text, finish_reason="stop")
        return completion

    def answer(self, messages: list[dict[str, Any]], profile: list[dict[str, Any]], max_tokens: int | None = None,
               personalize: bool = True, summary: dict[str, Any] | None = None,
               sampling: dict[str, Any] | None = None, options: FinalOptions | None = None) -> Result:
        """``run`` to its end, nothing streamed."""
        return drain(self.run(messages, profile, max_tokens, personalize, summary, sampling, options, stream=False))

    def run(self, messages: list[dict[str, Any]], profile: list[dict[str, Any]], max_tokens: int | None = None,
            personalize: bool = True, summary: dict[str, Any] | None = None, sampling: dict[str, Any] | None = None,
            options: FinalOptions | None = None, stream: bool = False) -> Generator[str, None, Result]:
        """Personalize the answer to the last user message (after the earlier turns the config allows) with
        ``profile`` and the method's stored derived data, ``summary`` (never built: none); fall back to the
        base answer. ``sampling``: the request's ``temperature``, ``top_p`` and ``seed`` (absent: the method's);
        ``options``: the client's output options for the final stage. With ``stream``, the answer's text is
        yielded as the final stage generates it (``streaming.FinalText``); the Result is the return value.
        With tools, the base first answers the conversation as sent: its tool calls are returned unchanged."""
        sampling, options = sampling or {}, options or FinalOptions()
        start, request_id = time.perf_counter(), "chatcmpl-" + uuid.uuid4().hex[:24]
        query = conversation_input(messages, self.config.context_messages)

        def base_result(completion: Completion, fallback: str) -> Result:
            return Result(request_id, completion.text, base_answer=completion.text, fallback=fallback,
                          prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                          stages=["base"], seconds=time.perf_counter() - start, finish_reason=completion.finish_reason,
                          tool_calls=completion.tool_calls, logprobs=completion.logprobs)

        if not personalize or not query:
            completion = yield from self.base(messages, max_tokens, sampling, options, stream)
            return base_result(completion, "" if personalize else "no user")
        if options.tools:  # the base decides between tool calls (returned unchanged) and a text answer
            decided = yield from self.base(messages, max_tokens, sampling, options, stream=False)
            if decided.tool_calls:
                return base_result(decided, "tool calls are not personalized")
            options = options.without_tools()
        derived = {self.derived_key: summary["text"] if summary else ""} if self.derived_key else {}
        example = Example(id=request_id, input=query, profile=profile, derived=derived)
        method = self.method
        overrides = {**sampling, **({"max_new_tokens": max_tokens} if max_tokens else {})}
        system = [{"role": "system", "content": message_text(m.get("content"))} for m in messages
                  if m.get("role") in SYSTEM_ROLES and message_text(m.get("content"))]
        if overrides or system:  # the request's settings for this answer: a shallow copy shares the models
            method = copy.copy(self.method)
            method.config = self.method.config.model_copy(update=overrides)
            if system:  # the client's system messages stay system messages, ahead of the method's prompt
                method.llm = SystemFirst(self.method.llm, system)
        extract = FinalText(method.output_filter, options.stop, lambda raw: method.final(Answer(raw, Trace(),
                                                                                           method.output_filter)).prediction)
        try:
            with self.lock:
                # the final stage gets the client's options when its text is the answer; otherwise (RPO's
                # reflection) a stop string could cut its <think> part: the service cuts the answer instead
                final = options.apply if method.output_filter == "plain" else (lambda request: request)
                plan = Returning(stream_plan(method.plan(example, profile), method.backends(), method.final_stage,
                                             final, stream))
                for piece in plan:
                    if new := extract.feed(piece):
                        yield new
                answer, last = plan.value
        except BackendError as exc:
            LOG.warning("base model failed: %s", error_summary(exc))
            raise UpstreamError.of(exc) from None
        except Exception as exc:  # personalization failed: the base answer, logged and counted
            if not self.config.fallback_to_base or extract.sent:
                raise
            LOG.warning("personalization failed (%s); answering with the base answer", error_summary(exc))
            if self.metrics:
                self.metrics.fallbacks.labels(reason=type(exc).__name__).inc()
            completion = yield from self.base(messages, max_tokens, sampling, options, stream)
            return base_result(completion, f"error: {type(exc).__name__}")
        trace = answer.trace
        base_answer = str(trace.extra.get("base_answer", ""))
        text = extract.text(answer.raw)
        finish, malformed = (last.finish_reason if last else "stop"), text is None
        if text is None:  # malformed (RPO): the base answer
            text, finish = base_answer, "stop"
            if self.metrics:
                self.metrics.fallbacks.labels(reason="malformed").inc()
        elif last and text != last.text and method.output_filter == "plain":
            finish = "stop"  # cut here at a stop string
        if stream and (rest := extract.rest(text)):
            yield rest
        reflection = parse_reflection(answer.raw)
        return Result(request_id, text, base_answer=base_answer,
                      retrieved_ids=list(trace.retrieved_ids), thinking=reflection[0] if reflection else "",
                      fallback="malformed output" if malformed else "",
                      prompt_tokens=trace.prompt_tokens, completion_tokens=trace.completion_tokens,
                      stages=list(trace.stages), summary_version=summary["version"] if summary else None,
                      seconds=time.perf_counter() - start, finish_reason=finish,
                      logprobs=last.logprobs if last and method.output_filter == "plain" else None)

    def close(self) -> None:
        if hasattr(self.llm, "close"):
            self.llm.close()

