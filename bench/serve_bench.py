"""Throughput of ``personalign serve`` at 50 clients, against the rate of the base model it fronts, in one run.

    python bench/serve_bench.py            # 1, 2, 4 workers x SQLite, PostgreSQL x plain, RAG; 10 s per cell
    python bench/serve_bench.py --quick    # 1, 2 workers, SQLite only, 3 s per cell

1. The fake base (``async_base.py``: asyncio, backlog 1024, 200 ms per reply) is measured alone: ``--clients``
   closed-loop clients sending completions straight to it. This is the base's own rate.
2. For each store and worker count, ``personalign serve --workers N`` (RAG, BM25 ranked in the store, k 4) in
   front of that base: ``--users`` users get ``--items`` history items through the API, then the same clients
   send plain completions (no ``user``: a pass-through to the base) and personalized ones (``user``: RAG).

The clients are one asyncio loop on raw keep-alive HTTP/1.1 connections, so they cost little CPU; the
table still shows the machine's CPU use and the client's share of it, because the client, the base and
the service share this machine's cores. Prints one markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))  # postgres.py: a throwaway PostgreSQL server

from async_base import base_process  # noqa: E402

CLI = [sys.executable, "-m", "personalign.cli"]


@dataclass
class Service:
    url: str        # its /v1
    key: str        # a tenant's key
    store_url: str
    pid: int        # the serve process (its workers are its children)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and all its descendants, from /proc."""
    seconds, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            seconds += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return seconds


async def _client(host: str, port: int, path: str, key: str, bodies: Iterator[bytes], until: float,
                  latencies: list[float], errors: list[str]) -> None:
    """One closed-loop client on one keep-alive connection: send, wait for the whole reply, repeat."""
    reader, writer = await asyncio.open_connection(host, port)
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\n").encode()
    try:
        while time.monotonic() < until:
            body = next(bodies)
            start = time.perf_counter()
            writer.write(head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            response = await reader.readuntil(b"\r\n\r\n")
            status = response[9:12]
            length = next((int(line[15:]) for line in response.split(b"\r\n")
                           if line[:15].lower() == b"content-length:"), None)
            if length is None:
                raise RuntimeError(f"reply without Content-Length: {response[:200]!r}")
            reply = await reader.readexactly(length)
            if status != b"200":
                errors.append(f"{status.decode()}: {reply[:200].decode(errors='replace')}")
            else:
                latencies.append(time.perf_counter() - start)
    finally:
        writer.close()


def load(url: str, key: str, clients: int, seconds: float, user_count: int | None, server_pid: int) -> dict[str, Any]:
    """``clients`` closed-loop clients for ``seconds`` (after 1 s of warm-up): rate, latencies, CPU use (the
    machine's, the client's, and the server's per request: ``server_pid`` and its children)."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    path = "/" + "/".join(url.split("//")[1].split("/")[1:]) + "/chat/completions"

    def bodies(n: int) -> Iterator[bytes]:
        for r in range(10**9):
            body: dict[str, Any] = {"model": "fake", "max_tokens": 16,
                                    "messages": [{"role": "user", "content": f"tell me about topic {(n + r) % 10}"}]}
            if user_count:
                body["user"] = f"u{(n + r) % user_count}"
            yield json.dumps(body).encode()

    async def run(duration: float) -> tuple[list[float], list[str], float]:
        latencies: list[float] = []
        errors: list[str] = []
        until = time.monotonic() + duration
        start = time.perf_counter()
        await asyncio.gather(*(_client(host, int(port), path, key, bodies(n), until, latencies, errors)
                               for n in range(clients)))
        return latencies, errors, time.perf_counter() - start

    asyncio.run(run(1.0))  # warm-up: connections, caches, the service's thread pool
    busy0, total0 = cpu_ticks()
    client0, server0 = time.process_time(), process_tree_cpu(server_pid)
    latencies, errors, elapsed = asyncio.run(run(seconds))
    busy1, total1 = cpu_ticks()
    server = process_tree_cpu(server_pid) - server0
    cores = os.cpu_count() or 1
    return {"rate": len(latencies) / elapsed, "p50": quantile(latencies, 0.5), "p99": quantile(latencies, 0.99),
            "errors": len(errors), "first_error": errors[0] if errors else "",
            "cpu": (busy1 - busy0) / max(1, total1 - total0),
            "client_cpu": (time.process_time() - client0) / elapsed / cores,
            "server_ms": server / max(1, len(latencies) + len(errors)) * 1000}


@contextlib.contextmanager
def service(config_text: str, workers: int, max_seconds: float) -> Iterator[Service]:
    """``personalign serve --workers N`` in its own processes, once every process answers."""
    with tempfile.TemporaryDirectory() as tmp:
        port = _port()
        config = Path(tmp) / "serve.yaml"
        config.write_text(f"data_dir: {tmp}/data\nport: {port}\n{config_text}")
        made = subprocess.run(CLI + ["tenant", "add", "bench", "--config", str(config)], capture_output=True,
                              text=True, check=True)
        key = made.stdout.split("API key ")[1].split()[0]
        proc = subprocess.Popen(CLI + ["serve", "--config", str(config), "--workers", str(workers),
                                       "--log-level", "warning"])
        kill_timer = threading.Timer(max_seconds, proc.kill)  # bounded in time whatever happens
        kill_timer.daemon = True
        kill_timer.start()
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            pids: set[int] = set()
            while len(pids) < workers:  # every process up (each new connection may go to any of them)
                try:
                    pids.add(httpx.get(f"{url}/healthz", timeout=2).json()["pid"])
                except httpx.TransportError:
                    time.sleep(0.2)
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"personalign serve --workers {workers} did not start ({len(pids)} up)")
            store = next((line.split(":", 1)[1].strip().strip("'") for line in config_text.splitlines()
                          if line.startswith("store_url:")), f"sqlite:///{tmp}/data/personalign.db")
            yield Service(f"{url}/v1", key, store, proc.pid)
        finally:
            kill_timer.cancel()
            proc.terminate()
            proc.wait(timeout=30)


@contextlib.contextmanager
def stores(names: list[str]) -> Iterator[list[tuple[str, str]]]:
    """(name, config line) per store; PostgreSQL runs as a throwaway server (skipped with a note if absent)."""
    with contextlib.ExitStack() as stack:
        found = []
        for name in names:
            if name == "sqlite":
                found.append(("SQLite", ""))
                continue
            try:
                from postgres import postgres_server

                server = stack.enter_context(postgres_server())
            except BaseException as exc:  # pytest's skip (no server binaries, no psycopg) is a BaseException
                print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
                continue
            found.append(("PostgreSQL", f"store_url: '{server.database()}'\n"))
        yield found


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with base_process(args.delay, args.base_processes) as (base_url, base_pid):
        base = load(base_url, "none", args.clients, args.seconds, None, base_pid)
        rows.append({"workers": "-", "store": "-", "mode": "fake base alone", **base})
        print(f"base alone: {base['rate']:.1f} req/s", file=sys.stderr)
        with stores(args.stores) as found:
            for store_name, store_line in found:
                for workers in args.workers:
                    config = (f"base_llm: openai:fake\nbase_llm_options: {{base_url: '{base_url}', api_key: none}}\n"
                              f"k: 4\n{store_line}")
                    with service(config, workers, args.max_seconds) as running:
                        url, headers = running.url, {"Authorization": f"Bearer {running.key}"}
                        for user in range(args.users):
                            reply = httpx.post(f"{url}/users/u{user}/history", headers=headers, timeout=60, json={
                                "items": [{"text": f"user {user} likes topic {i} and short answers"}
                                          for i in range(args.items)]})
                            assert reply.status_code == 201, reply.text
                        for mode, users in (("plain pass-through", None), ("personalized RAG (BM25)", args.users)):
                            result = load(url, running.key, args.clients, args.seconds, users, running.pid)
                            rows.append({"workers": workers, "store": store_name, "mode": mode, **result})
                            print(f"{workers} workers, {store_name}, {mode}: {result['rate']:.1f} req/s",
                                  file=sys.stderr)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    base = rows[0]["rate"]
    plain = {(r["workers"], r["store"]): r["p50"] for r in rows if r["mode"] == "plain pass-through"}
    lines = ["| workers | store | mode | req/s | × base rate | p50 (ms) | p50 × plain | p99 (ms) | errors | "
             "server CPU per request (ms) | machine CPU busy | client CPU |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r["p50"] / plain[(r["workers"], r["store"])] if (r["workers"], r["store"]) in plain else float("nan")
        lines.append(f"| {r['workers']} | {r['store']} | {r['mode']} | {r['rate']:.1f} | {r['rate'] / base:.2f} | "
                     f"{r['p50'] * 1000:.0f} | {'-' if ratio != ratio else f'{ratio:.2f}'} | {r['p99'] * 1000:.0f} | "
                     f"{r['errors']} | {r['server_ms']:.1f} | {r['cpu']:.0%} | {r['client_cpu']:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 and 2 workers, SQLite only, 3 s per cell")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.2, help="the fake base's seconds per reply")
    parser.add_argument("--base-processes", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=900, help="each service is killed after this")
    args = parser.parse_args()
    if args.quick:
        args.workers, args.stores, args.seconds = "1,2", "sqlite", min(args.seconds, 3.0)
    args.workers = [int(w) for w in args.workers.split(",")]
    args.stores = args.stores.split(",")
    load_before = os.getloadavg()[0]
    rows = run(args)
    print(f"{args.clients} clients, fake base {args.delay * 1000:.0f} ms, {args.users} users x {args.items} items, "
          f"{args.seconds:g} s per cell, {os.cpu_count()} cores, load average before: {load_before:.2f}")
    print(table(rows))
    for r in rows:
        if r["first_error"]:
            print(f"first error ({r['workers']} workers, {r['store']}, {r['mode']}): {r['first_error']}")


if __name__ == "__main__":
    main()
