"""Load on ``personalign serve``: 50 concurrent clients on loopback, bounded in count and time.

    python bench/serve_bench.py --base fake       # base model: FakeLatencyServer, 200 ms per call, own process
    python bench/serve_bench.py --base embedded   # base model: the bundled SmolLM2 in the service (llama.cpp)

The service runs as ``personalign serve`` in its own process (RAG, BM25, SQLite store). Each of
``--users`` users gets ``--items`` history items through the API (add latency measured), then
``--clients`` threads send ``--requests`` personalized completions each (with ``user``) and as many
plain ones (no ``user``: the base call alone). Prints one markdown table.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

import httpx

sys.path.insert(0, str(Path(__file__).parent))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@contextmanager
def service(config_text: str, max_seconds: float) -> Iterator[tuple[str, str]]:
    """``personalign serve`` in its own process; yields (url, tenant key); killed after ``max_seconds``."""
    with tempfile.TemporaryDirectory() as tmp:
        port = _port()
        config = Path(tmp) / "serve.yaml"
        config.write_text(f"data_dir: {tmp}/data\nport: {port}\n{config_text}")
        cli = [sys.executable, "-m", "personalign.cli"]
        made = subprocess.run(cli + ["tenant", "add", "bench", "--config", str(config)], capture_output=True,
                              text=True, check=True)
        key = made.stdout.split("API key ")[1].split()[0]
        proc = subprocess.Popen(cli + ["serve", "--config", str(config), "--log-level", "warning"])
        url = f"http://127.0.0.1:{port}"
        kill_timer = threading.Timer(max_seconds, proc.kill)  # the bench is bounded in time whatever happens
        kill_timer.daemon = True
        kill_timer.start()
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("personalign serve did not start")
                time.sleep(0.2)
            yield url, key
        finally:
            kill_timer.cancel()
            proc.terminate()
            proc.wait(timeout=30)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from latency_server import latency_server_process

    fake = args.base == "fake"
    base_server = latency_server_process(args.latency) if fake else nullcontext(None)
    with base_server as base_url:
        config = (f"base_llm: openai:fake\nbase_llm_options: {{base_url: '{base_url}', api_key: none, concurrency: 64}}\n" if fake
                  else "base_llm: llamacpp\nbase_llm_options: {quant: q8_0, n_ctx: 2048}\n")
        with service(config, args.max_seconds) as (url, key):
            headers = {"Authorization": f"Bearer {key}"}
            http = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=args.clients * 2))
            adds = []
            for user in range(args.users):
                for item in range(args.items):
                    start = time.perf_counter()
                    reply = http.post(f"{url}/v1/users/u{user}/history", headers=headers,
                                      json={"items": [{"text": f"user {user} likes topic {item} and short answers"}]})
                    adds.append(time.perf_counter() - start)
                    assert reply.status_code == 201, reply.text

            def client(n: int, personalized: bool) -> list[dict[str, Any]]:
                rows = []
                for r in range(args.requests):
                    body = {"model": "personalign", "max_tokens": args.max_tokens,
                            "messages": [{"role": "user", "content": f"tell me about topic {r}"}]}
                    if personalized:
                        body["user"] = f"u{n % args.users}"
                    start = time.perf_counter()
                    try:
                        reply = http.post(f"{url}/v1/chat/completions", headers=headers, json=body)
                        ok = reply.status_code == 200
                        trace = reply.json().get("personalign", {}) if ok else {}
                    except httpx.HTTPError:
                        ok, trace = False, {}
                    rows.append({"ok": ok, "seconds": time.perf_counter() - start, **trace.get("timings", {})})
                return rows

            results = {}
            for personalized in (False, True):
                start = time.perf_counter()
                with ThreadPoolExecutor(args.clients) as pool:
                    rows = [r for rs in pool.map(lambda n: client(n, personalized), range(args.clients)) for r in rs]
                results[personalized] = (rows, time.perf_counter() - start)
    plain, personalized = results[False], results[True]
    row = {"base": f"fake {args.latency * 1000:.0f} ms" if fake else "embedded SmolLM2 (llama.cpp)",
           "clients": args.clients, "requests": len(personalized[0]),
           "throughput (req/s)": round(len(personalized[0]) / personalized[1], 2),
           "errors": sum(not r["ok"] for r in personalized[0] + plain[0])}
    ok = [r for r in personalized[0] if r["ok"]]
    for stage in ("seconds", "store_read", "personalize", "store_write"):
        values = [r[stage] for r in ok if stage in r]
        name = "end to end" if stage == "seconds" else stage
        row[f"{name} p50 / p99 (ms)"] = f"{quantile(values, 0.5) * 1000:.1f} / {quantile(values, 0.99) * 1000:.1f}"
    row["history add p50 / p99 (ms)"] = f"{quantile(adds, 0.5) * 1000:.1f} / {quantile(adds, 0.99) * 1000:.1f}"
    base_p50 = statistics.median(r["seconds"] for r in plain[0] if r["ok"])
    row["base call alone p50 (ms)"] = f"{base_p50 * 1000:.1f}"
    row["personalization overhead (p50)"] = f"{statistics.median(r['seconds'] for r in ok) / base_p50:.2f}x"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", choices=["fake", "embedded"], default="fake")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=4, help="completions per client, each kind")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=900)
    args = parser.parse_args()
    row = run(args)
    print("| " + " | ".join(row) + " |\n|" + "---|" * len(row) + "\n| " + " | ".join(str(v) for v in row.values()) + " |")


if __name__ == "__main__":
    main()
