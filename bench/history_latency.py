"""Latency of a personalized request against the size of the user's history (10, 1,000, 10,000 items).

    python bench/history_latency.py                 # SQLite and PostgreSQL (when its server binaries exist)
    python bench/history_latency.py --stores sqlite --sizes 10,1000

For each store, one user per size gets synthetic items through the API (15-40 words drawn from a Zipf-like
vocabulary of 2,000 words, so common words have long posting lists). Then, per size, ``--requests``
queries are timed, one at a time:
- a whole request: ``personalign serve`` (RAG, BM25, k 4) in front of a fake base that answers at once
  (``async_base.py``, 0 ms), with ``user``;
- retrieval now: ``personalign.serve.search.search`` (BM25 ranked in the store), in this process;
- retrieval before: the user's whole history read from the store and ranked by a fresh ``BM25Retriever``,
  as every request did before the store kept the index.
On PostgreSQL the index is vacuumed after the adds, as autovacuum does after 1,000 inserts (its visibility
map lets ranking read the postings from the index alone; rows not yet vacuumed cost a heap read each).
Prints one markdown table of medians; "added" is a request's median minus the 10-item user's. CPU columns
(the service's processes, from /proc; this thread's for retrieval) are less disturbed than wall times
when other work shares the machine's cores.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from async_base import base_process  # noqa: E402
from serve_bench import process_tree_cpu, service, stores  # noqa: E402

from personalign.retrievers.bm25 import BM25Retriever  # noqa: E402
from personalign.serve.personalizer import CHAT_TASK  # noqa: E402
from personalign.serve.search import search  # noqa: E402
from personalign.serve.store import Store  # noqa: E402
from personalign.tasks import get_task  # noqa: E402

VOCABULARY = [f"w{n}" for n in range(2000)]
WEIGHTS = [1 / (rank + 1) for rank in range(len(VOCABULARY))]


def texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(VOCABULARY, WEIGHTS, k=rng.randint(15, 40))) for _ in range(count)]


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure(store_name: str, store_line: str, sizes: list[int], requests: int) -> list[dict[str, Any]]:
    queries = [f"tell me more about {q}" for q in texts(requests, seed=99)]
    task = get_task(str(CHAT_TASK))
    rows = []
    with base_process(0.0) as (base_url, _), service(
            f"base_llm: openai:fake\nbase_llm_options: {{base_url: '{base_url}', api_key: none}}\n"
            f"max_request_bytes: 4000000\n{store_line}", 1, 1800) as running:
        url = running.url
        http = httpx.Client(timeout=120, headers={"Authorization": f"Bearer {running.key}"})
        store = Store(running.store_url)
        for size in sizes:
            items = texts(size, seed=size)
            for start in range(0, size, 1000):
                reply = http.post(f"{url}/users/u{size}/history",
                                  json={"items": [{"text": t} for t in items[start:start + 1000]]})
                assert reply.status_code == 201, reply.text
        if store.engine.dialect.name == "postgresql":  # what autovacuum does after inserts: index-only scans
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM (ANALYZE) history_terms")
        for size in sizes:
            def ask(query: str) -> float:
                start = time.perf_counter()
                reply = http.post(f"{url}/chat/completions", json={
                    "model": "fake", "user": f"u{size}", "messages": [{"role": "user", "content": query}]})
                assert reply.status_code == 200, reply.text
                return time.perf_counter() - start

            ask(queries[0])  # warm-up
            cpu = process_tree_cpu(running.pid)
            whole = [ask(query) for query in queries]
            cpu = (process_tree_cpu(running.pid) - cpu) / len(queries)
            now, now_cpu, before = [], [], []
            for query in queries:
                start, start_cpu = time.perf_counter(), time.thread_time()
                search(store, "bench", f"u{size}", query, 4)
                now.append(time.perf_counter() - start)
                now_cpu.append(time.thread_time() - start_cpu)
                start = time.perf_counter()
                BM25Retriever().top_k(query, store.items("bench", f"u{size}"), task, 4)
                before.append(time.perf_counter() - start)
            rows.append({"store": store_name, "items": size, "request": ms(whole), "cpu": cpu * 1000,
                         "now": ms(now), "now_cpu": ms(now_cpu), "before": ms(before)})
            print(f"{store_name} {size} items: request {ms(whole):.1f} ms", file=sys.stderr)
        store.engine.dispose()
        http.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--requests", type=int, default=30, help="timed queries per size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with stores(args.stores.split(",")) as found:
        for name, line in found:
            rows += measure(name, line, sizes, args.requests)
    print(f"medians of {args.requests} queries per size; RAG, k 4; fake base answering at once")
    print("| store | items | request p50 (ms) | added over 10 items (ms) | service CPU per request (ms) | "
          "added CPU (ms) | retrieval in the store (ms) | its CPU (ms) | "
          "retrieval before: read all + BM25 in memory (ms) |\n|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        small = next(r for r in rows if r["store"] == row["store"] and r["items"] == min(sizes))
        print(f"| {row['store']} | {row['items']:,} | {row['request']:.1f} | {row['request'] - small['request']:+.1f} | "
              f"{row['cpu']:.1f} | {row['cpu'] - small['cpu']:+.1f} | {row['now']:.1f} | {row['now_cpu']:.1f} | "
              f"{row['before']:.1f} |")


if __name__ == "__main__":
    main()
