"""Per-user preprocessing cost of RPM, POPI and HYDRA: LLM calls, tokens, seconds and bytes stored.

For each of the first ``--users`` dev users of a task: RPM builds its user model (features, factors,
reasoning paths), POPI writes the budgeted summary, HYDRA fits the user's heads (with a scorer saved by
``personalign eval --methods hydra``; skipped without one). The LLM cache starts empty, so every call is
made. Prints a markdown table: mean per user, with the range.

Usage: .venv/bin/python bench/user_cost.py --data ../shared/data/reallamp --task LaMP_2 --users 5 \
           --llm-options quant=q8_0,n_threads=1 [--hydra-scorer .cache/personalign/hydra/LaMP_2-....pt]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from personalign.backends import get_llm  # noqa: E402
from personalign.cli.common import llm_options  # noqa: E402
from personalign.data.lamp_io import load_split  # noqa: E402
from personalign.engine import run_plan  # noqa: E402
from personalign.methods import build_method  # noqa: E402
from personalign.retrievers import get_retriever  # noqa: E402
from personalign.tasks import get_task  # noqa: E402
from personalign.types import Answer, Trace  # noqa: E402


def rpm_cost(method, profile) -> dict:
    trace = Trace()

    def plan():
        model = yield from method.user_model(profile, trace)
        return Answer(model.to_json())
    start = time.perf_counter()
    answer = run_plan(plan(), method.backends())
    from personalign.rpm.user_model import UserModel

    cost = UserModel.from_json(answer.raw).cost
    return {"calls": cost.calls, "prompt_tokens": cost.prompt_tokens, "completion_tokens": cost.completion_tokens,
            "seconds": time.perf_counter() - start, "bytes": len(answer.raw.encode()), "skipped": cost.skipped,
            "cached": trace.cached_calls}


def popi_cost(method, profile) -> dict:
    trace = Trace()

    def plan():
        summary = yield from method.summarize(profile, trace)
        return Answer(summary)
    start = time.perf_counter()
    answer = run_plan(plan(), method.backends())
    return {"calls": len(trace.stages), "prompt_tokens": trace.prompt_tokens, "completion_tokens": trace.completion_tokens,
            "seconds": time.perf_counter() - start, "bytes": len(answer.raw.encode())}


def hydra_cost(method, profile) -> dict:
    heads = method.user_heads(profile)
    return {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": heads["seconds"], "bytes": heads["bytes"],
            "head": "user" if heads["adapter"] is not None else "shared"}


def cell(values: list[float], digits: int = 1) -> str:
    mean = sum(values) / len(values)
    return f"{mean:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/reallamp")
    parser.add_argument("--task", default="LaMP_2")
    parser.add_argument("--split", default="user")
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--llm", default="llamacpp")
    parser.add_argument("--llm-options", default="quant=q8_0,n_threads=1")
    parser.add_argument("--hydra-scorer", help="a scorer file saved by `personalign eval --methods hydra`")
    args = parser.parse_args()
    task = get_task(args.task)
    examples, _ = load_split(args.data, task, args.split, "dev")
    users, seen = [], set()
    for example in examples:  # one question per user (a user's questions share the history)
        key = example.user_id or frozenset(str(i.get("id")) for i in example.profile)
        if example.profile and key not in seen and len(users) < args.users:
            seen.add(key)
            users.append(example)
    cache = Path(tempfile.mkdtemp(prefix="user-cost-"))  # an empty LLM cache: every call is made
    llm = get_llm(args.llm, cache_path=cache / "llm.sqlite", **llm_options(args.llm_options))
    retriever = get_retriever("bm25")
    methods = {"rpm": (build_method("rpm", task, llm=llm, retriever=retriever, cache_dir=cache), rpm_cost),
               "popi": (build_method("popi", task, llm=llm, retriever=retriever, cache_dir=cache), popi_cost)}
    if args.hydra_scorer:
        methods["hydra"] = (build_method("hydra", task, llm=llm, retriever=retriever, cache_dir=cache,
                                         scorer=args.hydra_scorer), hydra_cost)
    rows = []
    for name, (method, measure) in methods.items():
        costs = [measure(method, e.profile) for e in users]
        print(f"[user_cost] {name}: {len(costs)} users, {sum(c.get('cached', 0) for c in costs)} cached calls",
              file=sys.stderr, flush=True)
        rows.append((name, costs))
    items = [len(e.profile) for e in users]
    print(f"{task.name}, {len(users)} dev users ({args.split} split), history items per user {cell(items, 0)}; "
          f"mean per user (min–max)\n")
    print("| method | LLM calls | prompt tokens | completion tokens | seconds | bytes stored |")
    print("|---|---|---|---|---|---|")
    for name, costs in rows:
        print(f"| {name} | " + " | ".join(cell([c[k] for c in costs], 2 if k == "seconds" else 0)
                                        for k in ("calls", "prompt_tokens", "completion_tokens", "seconds", "bytes")) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
