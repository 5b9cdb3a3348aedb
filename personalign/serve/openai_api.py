"""The OpenAI chat-completions surface of the service: the request, what each field does, the answer and its stream.

Every field of an OpenAI chat request is honoured, passed to the base model, accepted as harmless, or refused
with a 400 that names it (docs/serve.md, "OpenAI compatibility"): never accepted and silently ignored.
``n`` runs the whole answer ``n`` times (independent choices, indexed). A stream sends the final stage's text
as it is generated (``personalign.serve.streaming``); ``stream_options.include_usage`` adds OpenAI's last
chunk with ``choices: []`` and the usage.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from personalign.serve.personalizer import FinalOptions, Personalizer, Result, Returning, drain

# accepted and without effect here: dashboards, the provider's own storage, caching and routing hints
HARMLESS = {"metadata", "store", "prompt_cache_key", "prompt_cache_retention", "service_tier"}
# accepted only with the value that changes nothing
NEUTRAL = {"frequency_penalty": (0, 0.0), "presence_penalty": (0, 0.0), "logit_bias": ({},), "modalities": (["text"],)}
BASE_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "response_format", "logprobs", "top_logprobs")


def refuse(field: str, message: str) -> RequestValidationError:
    """A 400 in the OpenAI shape whose ``param`` is ``field``."""
    return RequestValidationError([{"type": "value_error", "loc": tuple(field.split(".")), "msg": message}])


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, tool_call_id, refusal...: passed on as sent
    role: str
    content: Any = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False
    include_obfuscation: bool | None = None  # harmless: no obfuscation padding is sent


class ChatRequest(BaseModel):
    """The OpenAI chat-completions request. Fields not declared here are refused by name (``check``)."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    user: str | None = None
    safety_identifier: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    n: int = Field(1, ge=1, le=16)
    stop: str | list[str] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None

    def sampling(self) -> dict[str, Any]:
        """The sampling fields the request set (the others stay the method's: greedy by default)."""
        return {name: getattr(self, name) for name in ("temperature", "top_p", "seed") if getattr(self, name) is not None}


def check(body: ChatRequest, messages: list[dict[str, Any]], personalizer: Personalizer,
          personalized: bool) -> FinalOptions:
    """The final stage's options for this request, or a 400 naming the first field the service cannot honour."""
    for name, value in (body.model_extra or {}).items():
        if name in HARMLESS or (name in NEUTRAL and value in NEUTRAL[name]) or value is None:
            continue
        raise refuse(name, f"this service does not support '{name}'" + (
            f" other than {NEUTRAL[name][0]!r}" if name in NEUTRAL else "") + " (docs/serve.md, OpenAI compatibility)")
    base = personalizer.llm
    method = personalizer.method
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stop) > 4 or not all(stop):
        raise refuse("stop", "stop takes up to 4 non-empty strings")
    fields = {name: getattr(body, name) for name in BASE_FIELDS if getattr(body, name) is not None}
    if (fields.get("response_format") or {}).get("type") == "text":
        fields.pop("response_format")  # the default
    if fields.get("logprobs") is False:
        fields.pop("logprobs")
    if "top_logprobs" in fields and not fields.get("logprobs"):
        raise refuse("top_logprobs", "top_logprobs needs logprobs: true")
    for name in fields:
        if name not in base.openai_fields:
            raise refuse(name, f"the base model ({base.name}) does not take '{name}'; leave it out")
    if personalized and method.output_filter != "plain":
        for name in ("response_format", "logprobs"):
            if name in fields:
                raise refuse(name, f"personalized answers of method {personalizer.method_name} are the text of its "
                                   f"'{method.final_stage}' stage, which cannot take '{name}'; send it without a user")
    for i, message in enumerate(messages):
        if (message.get("tool_calls") or message.get("role") == "tool") and "tools" not in base.openai_fields:
            where = f"messages.{i}." + ("tool_calls" if message.get("tool_calls") else "role")
            raise refuse(where, f"the base model ({base.name}) does not take tool calls")
        content = message.get("content")
        for j, part in enumerate(content if isinstance(content, list) else []):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                continue
            if personalized:
                raise refuse(f"messages.{i}.content.{j}", f"a personalized answer takes text parts only, not "
                                                          f"'{kind}'; send it without a user to reach the base model")
            if base.content_types is not None and kind not in base.content_types:
                raise refuse(f"messages.{i}.content.{j}", f"the base model ({base.name}) does not take '{kind}' parts")
    return FinalOptions(tuple(stop), json.dumps(fields, sort_keys=True) if fields else None)


# ------------------------------------------------------------------------------------------------ answers

Run = Callable[[bool], Generator[str, None, Result]]  # personalizer.run for this request; arg: stream


def choices(body: ChatRequest, run: Run, record: Callable[[Result], None]) -> list[Result]:
    """``n`` independent answers (in parallel threads when ``n`` > 1), each recorded as it is done."""
    def one(_: int) -> Result:
        result = drain(run(False))
        record(result)
        return result
    if body.n == 1:
        return [one(0)]
    with ThreadPoolExecutor(body.n) as pool:
        return list(pool.map(one, range(body.n)))


def message(result: Result) -> dict[str, Any]:
    body: dict[str, Any] = {"role": "assistant", "content": result.text if result.text or not result.tool_calls else None,
                            "refusal": None}
    if result.tool_calls:
        body["tool_calls"] = result.tool_calls
    return body


def usage(results: list[Result]) -> dict[str, int]:
    prompt, completion = sum(r.prompt_tokens for r in results), sum(r.completion_tokens for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def trace_body(result: Result) -> dict[str, Any]:
    return {"base_answer": result.base_answer, "retrieved_ids": result.retrieved_ids, "thinking": result.thinking,
            "fallback": result.fallback, "stages": result.stages, "summary_version": result.summary_version,
            "seconds": round(result.seconds, 3), "timings": result.timings}


def completion_body(results: list[Result], model: str) -> dict[str, Any]:
    return {"id": results[0].request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": i, "message": message(r), "logprobs": r.logprobs, "finish_reason": r.finish_reason}
                        for i, r in enumerate(results)],
            "usage": usage(results), "personalign": trace_body(results[0]),
            **({"personalign_choices": [trace_body(r) for r in results]} if len(results) > 1 else {})}


def events(body: ChatRequest, run: Run, record: Callable[[Result], None]) -> Iterator[tuple[int, str | Result]]:
    """``(choice index, text piece)`` as the final stage generates it, then ``(index, Result)``; choices in turn."""
    for index in range(body.n):
        choice = Returning(run(True))
        for piece in choice:
            yield index, piece
        record(choice.value)
        yield index, choice.value


def primed(stream: Iterator[Any]) -> Iterator[Any]:
    """``stream`` advanced to its first item now (so a base model that fails at once is an HTTP error, not a
    broken stream), then the rest as it comes."""
    first = next(stream)

    def rest() -> Iterator[Any]:
        yield first
        yield from stream
    return rest()


def chat_stream(body: ChatRequest, stream: Iterator[tuple[int, str | Result]],
                failed: Callable[[Exception], dict[str, Any]]) -> Iterator[str]:
    """Server-sent events as OpenAI sends them: per choice a role chunk, content chunks as generated, the tool calls,
    a finish chunk; with ``include_usage`` every chunk has ``usage: null`` and a last chunk ``choices: []`` carries
    the usage; then ``[DONE]``. The trace rides on each finish chunk (``personalign``)."""
    request_id, created = "chatcmpl-" + uuid.uuid4().hex[:24], int(time.time())
    with_usage = bool(body.stream_options and body.stream_options.include_usage)
    results: list[Result] = []

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        chunk = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": body.model,
                 "choices": choices, **({"usage": None} if with_usage else {}), **extra}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    started = -1
    try:
        for index, item in stream:
            if index != started:
                started = index
                yield event([{"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                              "finish_reason": None}])
            if isinstance(item, str):
                yield event([{"index": index, "delta": {"content": item}, "logprobs": None, "finish_reason": None}])
                continue
            results.append(item)
            if item.tool_calls:
                calls = [{"index": j, **call} for j, call in enumerate(item.tool_calls)]
                yield event([{"index": index, "delta": {"tool_calls": calls}, "logprobs": None, "finish_reason": None}])
            yield event([{"index": index, "delta": {}, "logprobs": item.logprobs, "finish_reason": item.finish_reason}],
                        personalign=trace_body(item))
    except Exception as exc:  # noqa: BLE001 - the stream has begun: the error goes in it, as OpenAI does
        yield f"data: {json.dumps(failed(exc), ensure_ascii=False)}\n\n"
        return
    if with_usage:
        yield event([], usage=usage(results))
    yield "data: [DONE]\n\n"
