"""Time to the first streamed token against the whole answer, through `personalign serve` on the embedded model.

Starts the service in-process (uvicorn on loopback) with the bundled SmolLM2 behind it (llama.cpp, RAG over
BM25), adds one user with a short history, then for the personalized path (``user`` set) and the pass-through
(no user) asks the same question ``--runs`` times each way: non-streamed (total seconds) and streamed with the
official openai client (seconds to the first content chunk, and to the last). Prints a markdown table of
medians and the ratio first-token / total, all measured in this one run.

Usage: .venv/bin/python bench/serve_ttft.py [--runs 5] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import openai  # noqa: E402
import uvicorn  # noqa: E402

from personalign.serve.app import create_app  # noqa: E402
from personalign.serve.config import ServeConfig  # noqa: E402
from personalign.serve.store import Store  # noqa: E402

HISTORY = ["I play the violin in a community orchestra", "My favourite composer is Bach",
           "I prefer short, concrete suggestions", "I practise every evening after work"]
QUESTION = "Suggest how I could spend a free Saturday, in a few sentences."


def measure(client: openai.OpenAI, user: str | None, max_tokens: int) -> tuple[float, float, float, int]:
    """(non-streamed seconds, streamed seconds to the first content chunk, streamed total seconds, tokens)."""
    extra = {"user": user} if user else {}
    kwargs = dict(model="personalign", messages=[{"role": "user", "content": QUESTION}], max_tokens=max_tokens,
                  **extra)
    start = time.perf_counter()
    whole = client.chat.completions.create(**kwargs)
    plain = time.perf_counter() - start
    start, first, text = time.perf_counter(), None, ""
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        piece = chunk.choices[0].delta.content if chunk.choices else None
        if piece:
            first = first if first is not None else time.perf_counter() - start
            text += piece
    total = time.perf_counter() - start
    assert text == whole.choices[0].message.content, "the stream differs from the non-streamed answer"
    return plain, first if first is not None else total, total, whole.usage.completion_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = ServeConfig(data_dir=folder, base_llm="llamacpp", base_llm_options={"n_ctx": 2048})
        store = Store(config.store())
        key = store.add_tenant("bench")
        server = uvicorn.Server(uvicorn.Config(create_app(config, store=store), host="127.0.0.1", port=0,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        httpx.post(f"{url}/v1/users/alice/history", json={"items": [{"text": t} for t in HISTORY]},
                   headers={"Authorization": f"Bearer {key}"}).raise_for_status()
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=300)
        print("| path | runs | tokens (median) | non-streamed total s | streamed: first token s | streamed total s "
              "| first token / total |")
        print("|---|---|---|---|---|---|---|")
        for name, user in (("personalized (RAG, `user` set)", "alice"), ("pass-through (no user)", None)):
            measure(client, user, args.max_tokens)  # warm-up
            rows = [measure(client, user, args.max_tokens) for _ in range(args.runs)]
            plain, first, total, tokens = (statistics.median(column) for column in zip(*rows))
            print(f"| {name} | {args.runs} | {tokens:.0f} | {plain:.2f} | {first:.3f} | {total:.2f} | "
                  f"{first / total:.2f} |", flush=True)
        server.should_exit = True
        thread.join(timeout=10)


if __name__ == "__main__":
    main()
