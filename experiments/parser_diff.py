"""Score the same prediction logs with an earlier lenient parser and with today's: metrics and verdicts side by side.

    git show <rev>:personalign/tasks/parsing.py > /tmp/parsing_before.py
    .venv/bin/python -m experiments.parser_diff --runs runs/reallamp --task LaMP_2,LaMP_3 --old /tmp/parsing_before.py \\
        --methods zero-shot,icl,rag --reference population-majority,user-majority,lead

No LLM calls: parsing is a score-time filter. Each LLM row is scored twice from its raw completions;
the verdict is the paired permutation test against the best of the ``--reference`` rows (lenient).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any, Callable

import personalign.tasks.filters as filters
from personalign.eval.report import best_reference, markdown_table, pair, verdict
from personalign.eval.runs import run_logs
from personalign.eval.scoring import summarize
from personalign.tasks import get_task


def load_parser(path: str) -> Callable[[Any, str], str]:
    """``parse_output`` of a parsing.py file from another revision (the stripped raw text when it gave nothing)."""
    spec = importlib.util.spec_from_file_location("parsing_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return lambda task, raw, source=None: module.parse_output(task, raw) or raw.strip()


def score(task_name: str, run_dir: Path, methods: list[str], references: list[str]) -> dict[str, dict[str, Any]]:
    """Lenient metric, unparsable share and verdict against the best reference, per method."""
    task = get_task(task_name)
    logs = run_logs(run_dir)
    results = {m: summarize(task, rows) for m, (_, rows) in logs.items() if m in methods + references}
    best = best_reference(task, {m: v for m, v in results.items() if m in references})
    out = {}
    for method in methods:
        if method not in results:
            continue
        metric = task.metrics[0]
        row = {"n": results[method]["n"], metric: results[method]["lenient"][metric],
               "unparsable": results[method]["unparsable_rate"]}
        if best is not None:
            test = pair(task, run_dir, method, best, "lenient", logs)[0]
            row["verdict"] = f"{verdict(test)} {best} (p = {test.p_value:.4f})"
        out[method] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="the --out folder of the eval runs")
    parser.add_argument("--task", required=True, help="comma-separated task names")
    parser.add_argument("--old", required=True, help="a parsing.py file from an earlier revision")
    parser.add_argument("--methods", required=True, help="comma-separated LLM rows to compare")
    parser.add_argument("--reference", required=True, help="comma-separated reference rows (the best one is used)")
    parser.add_argument("--split-part", default="user-dev")
    args = parser.parse_args()
    methods, references = args.methods.split(","), args.reference.split(",")
    today = filters.parse_output
    rows = []
    for task_name in args.task.split(","):
        run_dir = Path(args.runs) / task_name / args.split_part
        filters.parse_output = load_parser(args.old)
        before = score(task_name, run_dir, methods, references)
        filters.parse_output = today
        after = score(task_name, run_dir, methods, references)
        metric = get_task(task_name).metrics[0]
        for method, now in after.items():
            was = before[method]
            rows.append({"task": task_name, "method": method, "n": now["n"], "metric": metric,
                         "before": round(was[metric], 4), "after": round(now[metric], 4),
                         "unparsable before": round(was["unparsable"], 3),
                         "unparsable after": round(now["unparsable"], 3),
                         "verdict before": was.get("verdict", ""), "verdict after": now.get("verdict", "")})
    print(markdown_table(rows, list(rows[0])) if rows else "no rows")


if __name__ == "__main__":
    main()
