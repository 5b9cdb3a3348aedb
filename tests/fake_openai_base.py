"""A FAKE OpenAI-compatible base model over HTTP, for orchestration tests and benchmarks (never a model).

It speaks ``POST /v1/chat/completions`` (plain, ``stream`` with ``stream_options.include_usage``, ``n``,
``stop``, ``max_tokens`` -> ``finish_reason: length``, ``logprobs``/``top_logprobs``, ``tools``/``tool_choice``
-> ``tool_calls``, ``response_format`` json_object/json_schema, image parts) and ``GET /v1/models``. Answers
are deterministic functions of the request, so a test can compare the service with this server directly:

- a text answer is ``fake answer to: <last user text>`` (plus ``[N image(s)]`` when the last user message
  carried image parts); after a tool result it is ``tool said: <result>``;
- with ``tools`` (and ``tool_choice`` not ``none``) and a last user message that mentions ``weather`` or a
  forced function, it calls that tool (the first one by default) with arguments filled from its schema;
- with ``response_format`` it answers a JSON object (filled from the schema, or ``{"answer": ...}``).

Like OpenAI it answers 400 to a ``tool`` message without ``tool_call_id`` or without an assistant turn with
``tool_calls`` before it. Tokens are words. It listens on 127.0.0.1 with a listen backlog of 1024.

Run it: ``python tests/fake_openai_base.py --port 8001 --delay 0.2`` (``--delay``: seconds before each reply;
``--token-delay``: seconds between streamed tokens).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "fake-base"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else ""


def _images(content: Any) -> int:
    return sum(isinstance(p, dict) and p.get("type") == "image_url" for p in content) if isinstance(content, list) else 0


def _fill(schema: dict[str, Any], defs: dict[str, Any], hint: str) -> Any:
    """A value that satisfies a (simple) JSON schema: objects, arrays, enums, strings, numbers, booleans."""
    if "$ref" in schema:
        return _fill(defs[schema["$ref"].split("/")[-1]], defs, hint)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return _fill(next((s for s in schema[key] if s.get("type") != "null"), schema[key][0]), defs, hint)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = next((k for k in kind if k != "null"), "string") if isinstance(kind, list) else kind
    if kind == "object":
        return {name: _fill(prop, defs, f"{name} of {hint}") for name, prop in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_fill(schema.get("items") or {"type": "string"}, defs, hint)]
    return {"integer": 7, "number": 1.5, "boolean": True, "null": None}.get(kind, hint)


def _check_tool_turns(messages: list[dict[str, Any]]) -> str | None:
    """OpenAI's rule: a tool message answers a tool call of an assistant turn before it."""
    called: set[str] = set()
    for i, message in enumerate(messages):
        if message.get("role") == "assistant":
            called |= {call.get("id") for call in message.get("tool_calls") or []}
        if message.get("role") == "tool":
            if not message.get("tool_call_id"):
                return f"messages[{i}].tool_call_id: a tool message needs tool_call_id"
            if message["tool_call_id"] not in called:
                return (f"messages[{i}]: messages with role 'tool' must be a response to a preceding message "
                        "with 'tool_calls'")
    return None


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """The deterministic reply (one choice's message, finish reason and tokens) to a chat request body."""
    messages = body.get("messages") or []
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    prompt = _text(last_user.get("content"))
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice", "auto")
    forced = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    last = messages[-1] if messages else {}
    if tools and choice != "none" and last.get("role") == "user" and (
            forced or choice == "required" or "weather" in prompt.lower()):
        tool = next((t for t in tools if t["function"]["name"] == forced), tools[0])["function"]
        schema = tool.get("parameters") or {}
        arguments = _fill(schema, schema.get("$defs") or {}, prompt.split()[-1] if prompt.split() else "x")
        call = {"id": f"call_{abs(hash(prompt)) % 10**8:08d}", "type": "function",
                "function": {"name": tool["name"], "arguments": json.dumps(arguments)}}
        return {"content": None, "tool_calls": [call], "finish_reason": "tool_calls", "words": [], "prompt": prompt}
    if last.get("role") == "tool":
        text = "tool said: " + _text(last.get("content"))
    else:
        images = _images(last_user.get("content"))
        text = f"fake answer to: {prompt}" + (f" [{images} image(s)]" if images else "")
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema", {}).get("schema") or {}
        text = json.dumps(_fill(schema, schema.get("$defs") or {}, prompt))
    elif fmt.get("type") == "json_object":
        text = json.dumps({"answer": prompt})
    stop = body.get("stop")
    for cut in [stop] if isinstance(stop, str) else stop or []:
        if cut and cut in text:
            text = text[:text.index(cut)]
    words = text.split(" ")
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    finish = "stop"
    if limit and len(words) > limit:
        words, finish = words[:limit], "length"
    return {"content": " ".join(words), "tool_calls": None, "finish_reason": finish, "words": words, "prompt": prompt}


def _logprobs(words: list[str], top: int) -> dict[str, Any]:
    return {"content": [{"token": w, "logprob": -0.5, "bytes": list(w.encode()),
                         "top_logprobs": [{"token": w, "logprob": -0.5, "bytes": list(w.encode())}][:top]}
                        for w in words], "refusal": None}


class FakeOpenAIBase:
    """``with FakeOpenAIBase(delay=0.0) as url:`` gives ``http://127.0.0.1:PORT/v1``; ``requests`` records bodies."""

    def __init__(self, delay: float = 0.0, token_delay: float = 0.0, port: int = 0):
        self.delay, self.token_delay, self.requests = delay, token_delay, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0,
                                                                 "owned_by": "fake"}]})
                else:
                    self._send(404, {"error": {"message": "not found", "type": "invalid_request_error",
                                               "param": None, "code": "not_found"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.requests.append(body)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found", "type": "invalid_request_error",
                                                      "param": None, "code": "not_found"}})
                problem = _check_tool_turns(body.get("messages") or [])
                if problem:
                    return self._send(400, {"error": {"message": problem, "type": "invalid_request_error",
                                                      "param": "messages", "code": None}})
                time.sleep(server.delay)
                n = int(body.get("n") or 1)
                reply = answer(body)
                prompt_tokens = sum(len(_text(m.get("content")).split()) for m in body.get("messages") or [])
                usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n * len(reply["words"]),
                         "total_tokens": prompt_tokens + n * len(reply["words"])}
                top = int(body.get("top_logprobs") or 0)
                logprobs = _logprobs(reply["words"], top) if body.get("logprobs") else None
                if body.get("stream"):
                    return self._stream(body, reply, n, usage, top)
                message = {"role": "assistant", "content": reply["content"], "refusal": None}
                if reply["tool_calls"]:
                    message["tool_calls"] = reply["tool_calls"]
                self._send(200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                                 "model": body.get("model", MODEL), "usage": usage,
                                 "choices": [{"index": i, "message": message, "logprobs": logprobs,
                                              "finish_reason": reply["finish_reason"]} for i in range(n)]})

            def _stream(self, body: dict[str, Any], reply: dict[str, Any], n: int, usage: dict, top: int) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()

                def event(choices: list[dict[str, Any]], **extra: Any) -> None:
                    chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                             "model": body.get("model", MODEL), "choices": choices, **extra}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()

                for i in range(n):
                    event([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
                    if reply["tool_calls"]:
                        calls = [{"index": j, **call} for j, call in enumerate(reply["tool_calls"])]
                        event([{"index": i, "delta": {"tool_calls": calls}, "finish_reason": None}])
                    for j, word in enumerate(reply["words"]):
                        time.sleep(server.token_delay)
                        piece = word if j == 0 else " " + word
                        lp = _logprobs([word], top) if body.get("logprobs") else None
                        event([{"index": i, "delta": {"content": piece}, "logprobs": lp, "finish_reason": None}])
                    event([{"index": i, "delta": {}, "finish_reason": reply["finish_reason"]}])
                if (body.get("stream_options") or {}).get("include_usage"):
                    event([], usage=usage)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024  # listen backlog: many clients at once never wait on accept
            daemon_threads = True

        self._server = Server(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> str:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description="A FAKE OpenAI-compatible base model (tests and benchmarks only).")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed tokens")
    args = parser.parse_args()
    fake = FakeOpenAIBase(args.delay, args.token_delay, args.port)
    print(f"fake OpenAI base on {fake.url} (listen backlog {fake._server.request_queue_size})", flush=True)
    try:
        fake._server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
