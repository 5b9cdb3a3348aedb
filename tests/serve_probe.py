"""The outside probe of issue 27 as code: classes of hostile or malformed input sent to a running service.

``run_probe`` sends every case of every class over real HTTP and returns one row per request: its class, the
status it got, the status classes the case allows, and whether the base model was called for it. The test
(tests/test_serve_safety.py) runs it on SQLite and PostgreSQL; ``python tests/serve_probe.py`` prints the
table of 500s per class for the code it imports (on SQLite, and on PostgreSQL when one can start).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

LIMIT = 100_000  # the probed service's max_request_bytes


@dataclass
class Case:
    kind: str          # the probe class
    method: str
    path: str
    body: Any = None   # JSON-encoded unless ``raw``
    raw: bytes | None = None
    chunked_bytes: int = 0  # send a streamed (Transfer-Encoding: chunked) body of this many bytes instead
    allowed: tuple[int, ...] = (400,)


def chat(user: Any = "probe-user", content: Any = "hello", **extra: Any) -> dict[str, Any]:
    body = {"model": "personalign", "messages": [{"role": "user", "content": content}], **extra}
    if user is not None:
        body["user"] = user
    return body


def items(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"items": list(entries)}


def cases() -> list[Case]:
    history = "/v1/users/probe-user/history"
    long_user, ok_user = "u" * 300, "u" * 256
    return [
        Case("NUL bytes", "POST", history, items({"text": "a\x00b"})),
        Case("NUL bytes", "POST", history, items({"text": "t", "id": "a\x00b"})),
        Case("NUL bytes", "POST", "/v1/users/a%00b/history", items({"text": "t"})),
        Case("NUL bytes", "GET", "/v1/users/a%00b/history"),
        Case("NUL bytes", "DELETE", "/v1/users/a%00b"),
        Case("NUL bytes", "DELETE", "/v1/users/probe-user/history/a%00b"),
        Case("NUL bytes", "POST", "/v1/chat/completions", chat(user="a\x00b")),
        Case("NUL bytes", "POST", "/v1/chat/completions", chat(content="hi\x00there")),
        Case("NUL bytes", "POST", "/v1/chat/completions", chat(user=None, content="hi\x00there")),
        Case("NUL bytes", "POST", "/v1/responses", {"model": "m", "input": "hi\x00", "user": "probe-user"}),
        Case("over-long ids", "POST", f"/v1/users/{long_user}/history", items({"text": "t"})),
        Case("over-long ids", "GET", f"/v1/users/{long_user}/answers"),
        Case("over-long ids", "POST", "/v1/chat/completions", chat(user=long_user)),
        Case("over-long ids", "POST", "/v1/responses", {"model": "m", "input": "hi", "user": long_user}),
        Case("over-long ids", "POST", f"/v1/users/{ok_user}/history", items({"text": "t"}), allowed=(201,)),
        Case("over-long ids", "POST", "/v1/chat/completions", chat(user=ok_user), allowed=(200,)),
        Case("over-long ids", "POST", history, items({"text": "t", "id": "i" * 129})),
        Case("over-long ids", "POST", history, items({"text": "t", "id": "i" * 128}), allowed=(201,)),
        Case("over-long ids", "DELETE", f"{history}/{'i' * 200}"),
        Case("bad UTF-8", "POST", history, raw=b'{"items": [{"text": "\xff\xfe bad"}]}'),
        Case("bad UTF-8", "POST", "/v1/chat/completions",
             raw=b'{"model": "m", "user": "probe-user", "messages": [{"role": "user", "content": "\xc3\x28"}]}'),
        Case("bad UTF-8", "POST", history, raw=b'{"items": [{"text": "lone \\ud800 surrogate"}]}'),
        Case("bad UTF-8", "POST", history, raw=b'{"items": [{"text": "t", "id": "\\udfff"}]}'),
        Case("bad UTF-8", "POST", "/v1/chat/completions",
             raw=b'{"model": "m", "user": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}'),
        Case("bad UTF-8", "POST", "/v1/chat/completions",
             raw=b'{"model": "m", "user": "probe-user", "messages": [{"role": "user", "content": "\\ud800"}]}'),
        Case("bad UTF-8", "POST", "/v1/users/%ff%fe/history", items({"text": "t"}), allowed=(201,)),
        Case("huge bodies", "POST", history, chunked_bytes=50 * LIMIT, allowed=(413,)),
        Case("huge bodies", "POST", "/v1/chat/completions", chunked_bytes=50 * LIMIT, allowed=(413,)),
        Case("huge bodies", "POST", history, items({"text": "x" * (2 * LIMIT)}), allowed=(413,)),
        Case("duplicates", "POST", history, items({"text": "a", "id": "dup"}, {"text": "b", "id": "dup"}),
             allowed=(409,)),
        Case("duplicates", "POST", history, items({"text": "first", "id": "taken"}), allowed=(201,)),
        Case("duplicates", "POST", history, items({"text": "second", "id": "taken"}), allowed=(409,)),
        Case("duplicates", "POST", history, items({"text": "new", "id": "fresh"}, {"text": "again", "id": "taken"}),
             allowed=(409,)),
        Case("'/' in ids", "POST", history, items({"text": "t", "id": "a/b"})),
        Case("'/' in ids", "POST", "/v1/chat/completions", chat(user="a/b")),
        Case("'/' in ids", "POST", "/v1/users/a%2Fb/history", items({"text": "t"}), allowed=(400, 404)),
        Case("'/' in ids", "DELETE", f"{history}/a%2Fb", allowed=(400, 404)),
        Case("'/' in ids", "POST", history, items({"text": "t", "id": ".."})),
        Case("control characters", "POST", history, items({"text": "t", "id": "a\x1b[31m"})),
        Case("control characters", "POST", history, items({"text": "t", "id": "tab\there"})),
        Case("control characters", "POST", history, items({"text": "t", "id": "nel\u0085"})),
        Case("control characters", "POST", "/v1/users/a%01b/history", items({"text": "t"})),
        Case("control characters", "POST", "/v1/users/a%7Fb/history", items({"text": "t"})),
        Case("control characters", "POST", "/v1/chat/completions", chat(user="line\nbreak")),
        Case("control characters", "POST", history, items({"text": "bell \x07 and \x1b escapes"}), allowed=(201,)),
        Case("empty strings", "POST", history, items({"text": ""})),
        Case("empty strings", "POST", history, items({"text": "t", "id": ""})),
        Case("empty strings", "POST", "/v1/chat/completions", chat(user=""), allowed=(200, 400)),  # "": no user
        Case("empty strings", "POST", "/v1/chat/completions", chat(content=""), allowed=(200,)),
        Case("empty strings", "POST", history, items()),
        Case("non-string types", "POST", history, items({"text": 5})),
        Case("non-string types", "POST", history, items({"text": "t", "id": 5})),
        Case("non-string types", "POST", history, items({"text": ["a"]})),
        Case("non-string types", "POST", history, {"items": "text"}),
        Case("non-string types", "POST", history, [1, 2]),
        Case("non-string types", "POST", "/v1/chat/completions", chat(user=5)),
        Case("non-string types", "POST", "/v1/chat/completions", chat(user={"id": "x"})),
        Case("non-string types", "POST", "/v1/chat/completions", chat(content=5), allowed=(200, 400)),
        Case("non-string types", "POST", "/v1/chat/completions", {"model": "m", "messages": "hi", "user": "u"}),
    ]


def _chunks(size: int, piece: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"items": [{"text": "'
    sent = 0
    while sent < size:
        yield b"x" * piece
        sent += piece
    yield b'"}]}'


def send(client: httpx.Client, case: Case) -> tuple[int, bool]:
    """One case over HTTP: its status (0 when the server closed the connection without an answer) and whether an
    error came in the OpenAI shape."""
    headers = {"Content-Type": "application/json"}
    try:
        if case.chunked_bytes:
            reply = client.request(case.method, case.path, content=_chunks(case.chunked_bytes), headers=headers)
        elif case.raw is not None:
            reply = client.request(case.method, case.path, content=case.raw, headers=headers)
        elif case.body is not None:
            data = json.dumps(case.body).encode()
            reply = client.request(case.method, case.path, content=data, headers=headers)
        else:
            reply = client.request(case.method, case.path)
    except httpx.TransportError:
        return 0, False
    try:
        error = reply.json().get("error") if reply.status_code >= 400 else {"message": "-", "code": "-"}
    except (ValueError, AttributeError):
        error = None
    return reply.status_code, bool(isinstance(error, dict) and error.get("message") and error.get("code"))


def run_probe(url: str, key: str, base_calls: Callable[[], int]) -> list[dict[str, Any]]:
    """Every case against the service at ``url``: class, path, status, allowed, and whether the base was called."""
    rows = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        for case in cases():
            before = base_calls()
            status, shaped = send(client, case)
            rows.append({"class": case.kind, "request": f"{case.method} {case.path[:40]}", "status": status,
                         "allowed": case.allowed, "openai_shape": shaped, "base_called": base_calls() > before})
    return rows


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown: per class, requests tried and, per store, the 500s (a closed connection, 0, counts as one)."""
    stores = list(results)
    kinds = list(dict.fromkeys(row["class"] for row in next(iter(results.values()))))
    lines = ["| class | tried | " + " | ".join(f"500s on {s}" for s in stores) + " |",
             "|---|---|" + "---|" * len(stores)]
    for kind in kinds:
        counts = [sum(r["status"] >= 500 or r["status"] == 0 for r in results[s] if r["class"] == kind) for s in stores]
        tried = sum(r["class"] == kind for r in results[stores[0]])
        lines.append(f"| {kind} | {tried} | " + " | ".join(str(c) for c in counts) + " |")
    return "\n".join(lines)


def main() -> None:
    import sys
    import tempfile
    from contextlib import ExitStack
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from fakes import FakeEchoLLM
    from postgres import postgres_server
    from serve_helpers import running

    from personalign.serve.app import create_app
    from personalign.serve.config import ServeConfig
    from personalign.serve.store import Store

    results = {}
    with ExitStack() as stack:
        urls = {"SQLite": None}
        try:
            urls["PostgreSQL"] = stack.enter_context(postgres_server()).database()
        except BaseException as exc:  # pytest.skip outside pytest
            print(f"PostgreSQL not probed: {exc}")
        for name, store_url in urls.items():
            config = ServeConfig(data_dir=tempfile.mkdtemp(), store_url=store_url, max_request_bytes=LIMIT)
            store = Store(config.store(), config.max_history_items)
            key, llm = store.add_tenant("acme"), FakeEchoLLM()
            with running(create_app(config, base_llm=llm, store=store)) as url:
                results[name] = run_probe(url, key, lambda: len(llm.prompts))
            store.engine.dispose()
    for name, rows in results.items():
        for row in rows:
            if row["status"] >= 500 or row["status"] not in row["allowed"]:
                print(f"{name}: {row['class']}: {row['request']!r} -> {row['status']} (allowed {row['allowed']})"
                      + (" after the base model was called" if row["base_called"] else ""))
    print(table(results))


if __name__ == "__main__":
    main()
