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
from personalign.eval.checks import DataGolds
from personalign.eval.report import results_markdown
from personalign.eval.runs import find_run_dirs, run_logs
from personalign.eval.scoring import row_prediction, summarize
from personalign.tasks import get_task
from personalign.tasks.spec import TaskSpec


LIMIT_NOTE = ("made with --limit {limit}: it holds {n} of the split's questions, and LaMP's eval/evaluation.py, "
              "which requires every gold id, cannot score it (personalign report scores it)")


def write_prediction_files(run_dir: Path, label: str, task: TaskSpec, rows: list[dict[str, Any]],
                           limit: int | None) -> None:
    """Write ``<label>_lamp_outputs.json`` and ``<label>_lenient_predictions.json`` (LaMP outputs format).

    The first holds what LaMP's scorer should receive: each row's answer as the ``official`` mode
    scores it (the filter's structural extraction, unparsed), so LaMP's script on it reproduces the
    official column. The second holds the lenient parser's predictions (the lenient column).
    """
    ids = [str(r["id"]) for r in rows]
    note = LIMIT_NOTE.format(limit=limit, n=len(rows)) if limit is not None else None
    lamp_path = run_dir / f"{label}_lamp_outputs.json"
    write_outputs(lamp_path, task.name, zip(ids, (row_prediction(task, r, "official")[0] for r in rows)), note)
    lenient_note = (f"Personalign's lenient parses (the lenient column), not what LaMP's scorer should receive: "
                    f"that is {lamp_path.name}" + (f"; {note}" if note else ""))
    write_outputs(run_dir / f"{label}_lenient_predictions.json", task.name,
                  zip(ids, (row_prediction(task, r)[0] for r in rows)), lenient_note)
    legacy = run_dir / f"{label}_outputs.json"  # before 2026-12-06 it held the lenient parses under this name
    if legacy.exists():
        legacy.unlink()
        print(f"personalign: removed {legacy} (lenient parses under a misleading name); see {lamp_path.name}",
              file=sys.stderr)
    if note:
        print(f"personalign: {lamp_path}: {note}", file=sys.stderr)


def score_run(run_dir: Path, task: TaskSpec | None = None, only: list[str] | None = None,
              data: str | Path | None = None, problems: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Score every log of ``run_dir`` against the golds of its data (``data``, else the run's manifest);
    write metrics.json, results.md and each log's outputs files.

    A log that cannot be scored (stale data, ids not in the data, no readable rows) is left out of the
    metrics and named in results.md and in ``problems`` (printed as warnings when it is None).
    """
    results: dict[str, dict[str, Any]] = {}
    found: list[str] = []
    logs = run_logs(run_dir, found)
    golds = DataGolds(run_dir, data)
    for label, (key, rows) in list(logs.items()):
        log_task = task or get_task(key["task"])
        if key.get("task") != log_task.name:
            raise ConfigError(f"{run_dir}/predictions/{label}.jsonl belongs to task {key.get('task')}, not {log_task.name}")
        task = log_task
        rows, problem = golds.check(run_dir / "predictions" / f"{label}.jsonl", task, key, rows)
        if problem:
            found.append(problem)
            del logs[label]
            continue
        if rows[0].get("gold") is None:  # a split without golds
            continue
        results[label] = {**summarize(task, rows), "limit": key.get("limit"), "seed": key.get("seed")}
        write_prediction_files(run_dir, label, task, rows, key.get("limit"))
    with atomic_writer(run_dir / "metrics.json") as handle:
        json.dump(results, handle, indent=2)
    if task is not None:
        with atomic_writer(run_dir / "results.md") as handle:
            handle.write(results_markdown(task, run_dir, results, logs))
            if found:
                handle.write("\n### Not scored\n\n" + "".join(f"- {problem}\n" for problem in found))
    if problems is None:
        for problem in found:
            print(f"personalign: warning: {problem}", file=sys.stderr)
    else:
        problems.extend(found)
    return {k: v for k, v in results.items() if only is None or k in only}


def rescore(root: str | Path, data: str | Path | None = None,
            problems: list[str] | None = None) -> dict[Path, dict[str, dict[str, Any]]]:
    """Rescore every run folder at or below ``root``; return each folder's scored rows (empty when none could be
    scored; unscorable logs go to ``problems``)."""
    return {run_dir: score_run(run_dir, data=data, problems=problems) for run_dir in find_run_dirs(root)}
