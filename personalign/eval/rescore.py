"""Score a run folder from its prediction logs alone: re-parse, re-score, rewrite the tables.

``personalign rescore RUN_DIR`` makes zero LLM calls: the logs hold every raw completion, and the
filters and metrics run here. ``eval`` ends by calling the same code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from personalign.data.lamp_io import atomic_writer, write_outputs
from personalign.errors import ConfigError
from personalign.eval.predictions import read_log
from personalign.eval.scoring import row_prediction, summarize
from personalign.tasks import get_task
from personalign.tasks.spec import TaskSpec


def run_logs(run_dir: Path) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``{row label: (run key, rows in log order)}`` for every keyed log of a run folder."""
    logs = {}
    paths = sorted((run_dir / "predictions").glob("*.jsonl"), key=lambda p: ("#" in p.stem, p.stem))  # own rows first
    for path in paths:
        key, rows = read_log(path)
        if key is None:
            print(f"personalign: {path} has no run key; skipped", file=sys.stderr)
            continue
        logs[path.stem] = (key, list(rows.values()))
    return logs


def find_run_dirs(root: str | Path) -> list[Path]:
    """Run folders (those holding ``predictions/``) at or below ``root``."""
    root = Path(root)
    if not root.exists():
        raise ConfigError(f"{root} does not exist")
    found = sorted({p.parent for p in root.rglob("predictions") if p.is_dir()} |
                   ({root} if (root / "predictions").is_dir() else set()))
    if not found:
        raise ConfigError(f"no prediction logs under {root} (run `personalign eval` first)")
    return found


def score_run(run_dir: Path, task: TaskSpec | None = None, only: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Score every log of ``run_dir``; write metrics.json, results.md and official outputs files."""
    from personalign.eval.report import results_markdown

    results: dict[str, dict[str, Any]] = {}
    logs = run_logs(run_dir)
    for label, (key, rows) in logs.items():
        log_task = task or get_task(key["task"])
        if key.get("task") != log_task.name:
            raise ConfigError(f"{run_dir}/predictions/{label}.jsonl belongs to task {key.get('task')}, not {log_task.name}")
        task = log_task
        if not rows or rows[0].get("gold") is None:
            continue
        results[label] = {**summarize(task, rows), "limit": key.get("limit"), "seed": key.get("seed")}
        write_outputs(run_dir / f"{label}_outputs.json", task.name,
                      [(str(r["id"]), row_prediction(task, r)[0]) for r in rows])
    with atomic_writer(run_dir / "metrics.json") as handle:
        json.dump(results, handle, indent=2)
    if task is not None:
        with atomic_writer(run_dir / "results.md") as handle:
            handle.write(results_markdown(task, run_dir, results, logs))
    return {k: v for k, v in results.items() if only is None or k in only}


def rescore(root: str | Path) -> list[Path]:
    """Rescore every run folder at or below ``root``; return the folders."""
    dirs = find_run_dirs(root)
    for run_dir in dirs:
        score_run(run_dir)
    return dirs
