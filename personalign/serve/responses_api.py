"""OpenAI's Responses API (``POST /v1/responses``) for text, function tools and structured output.

A Responses request becomes a chat-completions request (``chat_request``) and is answered by the same machinery
(``openai_api``); the answer is rendered as a Responses object or its server-sent events. What is not carried
over is refused with a 400 naming the Responses field (docs/serve.md, "OpenAI compatibility").
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from personalign.serve.openai_api import HARMLESS, ChatRequest, refuse, trace_body
from personalign.serve.personalizer import Result

RESPONSES_HARMLESS = HARMLESS | {"background", "truncation", "include", "reasoning"}
RESPONSES_NEUTRAL = {"background": (False,), "truncation": ("disabled",), "include": ([],), "reasoning": ({},)}


class ResponsesRequest(BaseModel):
    """OpenAI's Responses request, text and function tools: answered by the chat-completions machinery."""

    model_config = ConfigDict(extra="allow")
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = None
    top_p: float | None = None
    stream: bool = False
    user: str | None = None
    safety_identifier: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": part.get("text", "")}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        return {"type": "image_url", "image_url": {"url": part["image_url"], "detail": part.get("detail", "auto")}}
    raise refuse(where, f"input parts of type '{kind}' are not served here (text and image URLs are)")


def chat_request(body: ResponsesRequest) -> ChatRequest:
    """The chat-completions request that answers ``body``; a 400 naming the Responses field it cannot carry."""
    for name, value in (body.model_extra or {}).items():
        if value is None or (name in RESPONSES_HARMLESS and (name not in RESPONSES_NEUTRAL or value in RESPONSES_NEUTRAL[name])):
            continue
        raise refuse(name, f"this service does not support '{name}' on /v1/responses"
                           + (" (it keeps no responses: send the whole conversation as input)"
                              if name == "previous_response_id" else ""))
    messages: list[dict[str, Any]] = [{"role": "system", "content": body.instructions}] if body.instructions else []
    items = [{"role": "user", "content": body.input}] if isinstance(body.input, str) else body.input
    for i, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "message":
            content = item.get("content")
            content = content if isinstance(content, str) else [_part(p, f"input.{i}.content.{j}")
                                                                 for j, p in enumerate(content or [])]
            messages.append({"role": item.get("role", "user"), "content": content})
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments", "")}}
            if messages and messages[-1]["role"] == "assistant" and messages[-1].get("tool_calls"):
                messages[-1]["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": item.get("output", "")})
        else:
            raise refuse(f"input.{i}.type", f"input items of type '{kind}' are not served here")
    tools = []
    for i, tool in enumerate(body.tools or []):
        if tool.get("type") != "function":
            raise refuse(f"tools.{i}.type", f"only function tools are served here, not '{tool.get('type')}'")
        tools.append({"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}})
    choice = body.tool_choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    fmt = (body.text or {}).get("format") or {"type": "text"}
    response_format = ({"type": "json_schema", "json_schema": {k: v for k, v in fmt.items() if k != "type"}}
                       if fmt.get("type") == "json_schema" else fmt)
    return ChatRequest(model=body.model, messages=messages, user=body.user, safety_identifier=body.safety_identifier,
                       stream=body.stream, max_completion_tokens=body.max_output_tokens, temperature=body.temperature,
                       top_p=body.top_p, tools=tools or None, tool_choice=choice, parallel_tool_calls=body.parallel_tool_calls,
                       response_format=response_format)


def _output(result: Result) -> list[dict[str, Any]]:
    items = [{"type": "function_call", "id": "fc_" + uuid.uuid4().hex[:24], "call_id": call.get("id"),
              "name": call["function"]["name"], "arguments": call["function"]["arguments"], "status": "completed"}
             for call in result.tool_calls or []]
    if result.text or not items:
        items.insert(0, {"type": "message", "id": "msg_" + uuid.uuid4().hex[:24], "status": "completed",
                         "role": "assistant", "content": [{"type": "output_text", "text": result.text,
                                                           "annotations": [], "logprobs": []}]})
    return items


def response_body(body: ResponsesRequest, result: Result | None, response_id: str, created: int,
                  output: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The Responses object (``result`` None: in progress)."""
    cut = result is not None and result.finish_reason == "length"
    done = {"input_tokens": result.prompt_tokens, "output_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
            "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}} if result else None
    return {"id": response_id, "object": "response", "created_at": created,
            "status": "in_progress" if result is None else "incomplete" if cut else "completed",
            "incomplete_details": {"reason": "max_output_tokens"} if cut else None, "error": None,
            "model": body.model, "instructions": body.instructions, "max_output_tokens": body.max_output_tokens,
            "output": output if output is not None else (_output(result) if result else []),
            "parallel_tool_calls": body.parallel_tool_calls is not False, "temperature": body.temperature,
            "top_p": body.top_p, "tool_choice": body.tool_choice or "auto", "tools": body.tools or [],
            "text": body.text or {"format": {"type": "text"}}, "metadata": (body.model_extra or {}).get("metadata") or {},
            "user": body.user, "store": False, "usage": done,
            **({"personalign": trace_body(result)} if result else {})}


def responses_stream(body: ResponsesRequest, stream: Iterator[tuple[int, str | Result]],
                     failed: Callable[[Exception], dict[str, Any]]) -> Iterator[str]:
    """The Responses API's server-sent events: created, the text item's deltas as generated, function calls,
    completed."""
    response_id, created, number = "resp_" + uuid.uuid4().hex[:24], int(time.time()), 0
    message_id, text = "msg_" + uuid.uuid4().hex[:24], ""

    def event(kind: str, **data: Any) -> str:
        nonlocal number
        number += 1
        return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': number, **data}, ensure_ascii=False)}\n\n"

    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    where = {"item_id": message_id, "output_index": 0, "content_index": 0}
    yield event("response.created", response=response_body(body, None, response_id, created))
    yield event("response.in_progress", response=response_body(body, None, response_id, created))
    try:
        for _, item in stream:
            if isinstance(item, str):
                if not text:
                    yield event("response.output_item.added", output_index=0, item={
                        "type": "message", "id": message_id, "status": "in_progress", "role": "assistant", "content": []})
                    yield event("response.content_part.added", part=part, **where)
                text += item
                yield event("response.output_text.delta", delta=item, logprobs=[], **where)
                continue
            output = _output(item)
            if text:
                output[0]["id"] = message_id
                yield event("response.output_text.done", text=item.text, logprobs=[], **where)
                yield event("response.content_part.done", part={**part, "text": item.text}, **where)
                yield event("response.output_item.done", output_index=0, item=output[0])
            for index, out in enumerate(output[1 if text else 0:], start=1 if text else 0):
                if out["type"] == "message":  # text that came at the end (not streamed): one piece
                    out["id"] = message_id
                yield event("response.output_item.added", output_index=index, item={**out, "status": "in_progress"})
                if out["type"] == "function_call":
                    yield event("response.function_call_arguments.done", item_id=out["id"], output_index=index,
                                arguments=out["arguments"])
                yield event("response.output_item.done", output_index=index, item=out)
            final = response_body(body, item, response_id, created, output)
            yield event("response.incomplete" if final["status"] == "incomplete" else "response.completed",
                        response=final)
    except Exception as exc:  # noqa: BLE001 - the stream has begun: the error goes in it
        yield event("error", **failed(exc)["error"])



CHAT_TO_RESPONSES = {"max_completion_tokens": "max_output_tokens", "response_format": "text.format", "messages": "input"}


def responses_refusal(exc: RequestValidationError) -> RequestValidationError:
    """A refusal of the chat request that answers a Responses request, naming the Responses field instead."""
    first = dict(exc.errors()[0])
    loc = [str(p) for p in first["loc"] if p != "body"]
    if loc and loc[0] in CHAT_TO_RESPONSES:
        loc = CHAT_TO_RESPONSES[loc[0]].split(".") + (loc[1:] if loc[0] != "messages" else [])
    return RequestValidationError([{**first, "loc": tuple(loc)}])
