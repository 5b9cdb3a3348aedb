"""A scripted OpenAI-style HTTP server on loopback, for the backend and service retry tests (a FAKE base: it answers
what the test's ``respond`` function says, nothing else)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[int, dict], tuple[int, dict, Any]]  # (request number, JSON body) -> (status, headers, JSON)


@contextmanager
def scripted_bases() -> Iterator[Callable[[Responder], tuple[str, dict]]]:
    """Yields ``start(respond)``, which starts a server whose ``POST /v1/chat/completions`` answers
    ``respond(n, body)`` for request n, and returns its /v1 URL and its state: ``requests`` (path, headers and
    body of each), ``in_flight``, ``max_in_flight``. Every server started is stopped on exit."""
    servers: list[ThreadingHTTPServer] = []

    def start(respond: Responder) -> tuple[str, dict]:
        state: dict[str, Any] = {"requests": [], "in_flight": 0, "max_in_flight": 0}
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    state["requests"].append({"path": self.path, "headers": dict(self.headers), "body": body})
                    n = len(state["requests"])
                    state["in_flight"] += 1
                    state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
                try:
                    status, headers, payload = respond(n, body) if self.path == "/v1/chat/completions" \
                        else (404, {}, {"error": "no such path"})
                finally:
                    with lock:
                        state["in_flight"] -= 1
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for key, value in {**headers, "Content-Type": "application/json",
                                       "Content-Length": str(len(data))}.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout tests)
                    pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads, server.block_on_close = True, False
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1", state

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
