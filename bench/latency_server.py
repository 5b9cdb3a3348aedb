"""A FAKE OpenAI-compatible chat server with a fixed latency, for throughput benchmarks and tests.

It answers ``POST /v1/chat/completions`` after sleeping ``latency`` seconds, with a deterministic
text derived from the prompt (so greedy runs can be compared), and usage counts. It listens on
127.0.0.1 only and stops itself after ``max_requests`` requests or ``max_seconds`` seconds,
whichever comes first. Not a model: its answers are for measuring orchestration, never quality.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWERS = ("1", "2", "3", "4", "5", "comedy", "Neural parsing of tweets", "what a day")


class FakeLatencyServer:
    """``with FakeLatencyServer(0.2) as url:`` gives ``http://127.0.0.1:PORT/v1``."""

    def __init__(self, latency: float = 0.2, max_requests: int = 20_000, max_seconds: float = 600.0):
        self.latency, self.max_requests, self.max_seconds = latency, max_requests, max_seconds
        self.requests = 0
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stall)

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server._lock:
                    server.requests += 1
                    over = server.requests > server.max_requests
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                time.sleep(server.latency)
                with server._lock:
                    server.in_flight -= 1
                prompt = json.dumps(body.get("messages", []), sort_keys=True)
                text = ANSWERS[int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % len(ANSWERS)]
                payload = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                           "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 1}}
                status = 503 if over else 200
                data = json.dumps(payload if status == 200 else {"error": "request budget spent"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> str:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._timer = threading.Timer(self.max_seconds, self._server.shutdown)
        self._timer.daemon = True
        self._timer.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def latency_server_process(latency: float = 0.2, max_requests: int = 20_000, max_seconds: float = 900.0) -> Iterator[str]:
    """The same server in its own process, so it does not share the client's interpreter lock."""
    process = subprocess.Popen([sys.executable, __file__, str(latency), str(max_requests), str(max_seconds)],
                               stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"latency server did not start: {url!r}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    server = FakeLatencyServer(float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
    with server as address:
        print(address, flush=True)
        time.sleep(server.max_seconds)
