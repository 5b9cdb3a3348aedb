"""A FAKE OpenAI-compatible base model for throughput benchmarks: asyncio, HTTP/1.1 keep-alive, a fixed delay.

``POST /v1/chat/completions`` is answered after ``--delay`` seconds with a deterministic short text and usage
counts; ``GET`` answers ``{"ok": true}``. Its processes accept on one listening socket (backlog 1024), each
serving its connections in one event loop, so a request costs it tens of microseconds of CPU: at 50
clients and 200 ms it must not be what limits a benchmark (``serve_bench.py`` measures its own rate).
Not a model: never use its answers for quality. Stops itself after ``--max-seconds``.

    python bench/async_base.py --port 8001 --delay 0.2 --processes 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

ANSWERS = ("1", "2", "3", "4", "5", "comedy", "Neural parsing of tweets", "what a day")
BACKLOG = 1024


def _reply(body: bytes) -> bytes:
    text = ANSWERS[int(hashlib.sha256(body).hexdigest(), 16) % len(ANSWERS)]
    payload = json.dumps({"id": "chatcmpl-fake", "object": "chat.completion", "model": "fake",
                          "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                       "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": len(body) // 4, "completion_tokens": 1,
                                    "total_tokens": len(body) // 4 + 1}}).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(payload)).encode() + b"\r\n\r\n" + payload)


async def _connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            if head.startswith(b"POST"):
                await asyncio.sleep(delay)
                writer.write(_reply(body))
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n"
                             b'{"ok": true}')
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def serve(sock: socket.socket, delay: float, max_seconds: float) -> None:
    """One process's event loop on the shared listening socket."""
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: _connection(r, w, delay), sock=sock, backlog=BACKLOG)
        async with server:
            await asyncio.sleep(max_seconds)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=1800)
    args = parser.parse_args()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(BACKLOG)
    print(f"http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
    children = [multiprocessing.Process(target=serve, args=(sock, args.delay, args.max_seconds), daemon=True)
                for _ in range(args.processes - 1)]
    for child in children:
        child.start()

    def stop(*_: object) -> None:
        for child in children:
            child.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    serve(sock, args.delay, args.max_seconds)
    for child in children:
        child.terminate()


@contextlib.contextmanager
def base_process(delay: float, processes: int = 1, max_seconds: float = 1800) -> Iterator[tuple[str, int]]:
    """The fake base in its own process(es); yields its ``/v1`` URL and its process id."""
    proc = subprocess.Popen([sys.executable, __file__, "--delay", str(delay), "--processes", str(processes),
                             "--max-seconds", str(max_seconds)], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"fake base did not start: {url!r}")
        time.sleep(0.2 * processes)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
