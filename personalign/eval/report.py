"""Results tables (markdown) and plots."""

from __future__ import annotations

from typing import Any

from personalign.tasks.metrics import LOWER_IS_BETTER


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A markdown table; metric columns get an arrow saying which direction is better."""
    def header(col: str) -> str:
        metric = col.split(" ")[-1]
        if metric in LOWER_IS_BETTER:
            return f"{col} ↓"
        if metric in ("accuracy", "f1", "rouge-1", "rouge-L"):
            return f"{col} ↑"
        return col

    lines = ["| " + " | ".join(header(c) for c in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def results_table(results: dict[str, dict[str, Any]], metrics: list[str]) -> str:
    """Methods as rows, metrics (then n, fallback rate, tokens and time per example) as columns."""
    columns = ["method", *metrics, "n", "fallback_rate", "prompt_tokens/ex", "s/ex"]
    rows = [{"method": name, **values} for name, values in results.items()]
    return markdown_table(rows, columns)


def cross_task_table(results_by_task: dict[str, dict[str, dict[str, Any]]], metrics_by_task: dict[str, list[str]],
                     extra: tuple[str, ...] = ()) -> str:
    """Methods as rows, ``<task> <metric>`` as columns (plus optional per-task extra columns)."""
    methods = list(dict.fromkeys(m for results in results_by_task.values() for m in results))
    columns = [f"{task} {metric}" for task in results_by_task for metric in [*metrics_by_task[task], *extra]]
    rows = []
    for method in methods:
        row: dict[str, Any] = {"method": method}
        for task, results in results_by_task.items():
            for metric in [*metrics_by_task[task], *extra]:
                row[f"{task} {metric}"] = results.get(method, {}).get(metric, "")
        rows.append(row)
    return markdown_table(rows, ["method", *columns])
