"""Per-example scores, committed: each row's metric values per question id, and nothing of the data.

``personalign results export RUN_DIR --out docs/scores`` writes one JSON file per task, split and part
(``LaMP_2-user-dev.json``) from a run folder's prediction logs. The file holds question ids, numbers
(label indices into the task's label set, rating errors, ROUGE F-measures), row names and the run keys'
settings; every string in it is checked against a strict shape (``check_scores``), so no answer, gold or
history text can slip in. ``personalign results page`` rebuilds ``docs/results.md`` from these files alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import personalign
from personalign.data.lamp_io import atomic_writer
from personalign.errors import ConfigError
from personalign.eval.checks import DataGolds
from personalign.eval.report import is_reference
from personalign.eval.runs import find_run_dirs, run_logs
from personalign.eval.scoring import SCORE_MODES, score_rows
from personalign.manifest import git_revision
from personalign.tasks import get_task
from personalign.tasks.metrics import label_index
from personalign.tasks.parsing import is_answer
from personalign.tasks.spec import TaskSpec
from personalign.tasks.statistics import error_stats, example_stats, label_stats, rating_errors

FORMAT = "personalign-scores/1"
DIGITS = 6  # ROUGE and non-integer errors are rounded here: a cell moves by at most 5e-7

ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")  # an id is one short token, never a sentence
LABEL = re.compile(r"[a-z0-9][a-z0-9_.@+-]{0,63}(#(other-user|none))?")
TOKEN = re.compile(r"[A-Za-z0-9_.:@/+=-]{1,160}")  # model names, paths, versions, hashes
COMMAND = re.compile(r"personalign (eval|rescore|report|data synth) [A-Za-z0-9_.:@/+=,# -]{1,600}")
RUN_FIELDS = ("model", "retriever", "k", "seed", "limit")


def task_values(task: TaskSpec, preds: list[str], golds: list[str], mode: str) -> dict[str, list]:
    """The per-example numbers a task's metrics are computed from, for one scoring mode."""
    if task.kind == "classification":
        return {"label": [label_index(list(task.labels), p.strip()) for p in preds]}
    if task.kind == "rating":
        return {"error": [_number(e) for e in rating_errors(task, preds, golds, mode)]}
    return {metric: [_number(v) for v in example_stats(task, metric, preds, golds, mode)[:, 0]]
            for metric in task.metrics}


def _number(value: float) -> int | float:
    value = round(float(value), DIGITS)
    return int(value) if value == int(value) else value


def export_run(run_dir: Path, data: str | Path | None = None, commands: list[str] | None = None) -> dict[str, Any]:
    """The scores of every scorable log of one run folder (refused by name when a log is stale or damaged)."""
    problems: list[str] = []
    logs = run_logs(run_dir, problems)
    golds = DataGolds(run_dir, data)
    task: TaskSpec | None = None
    scored: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for label, (key, rows) in logs.items():
        task = task or get_task(key["task"])
        rows, problem = golds.check(run_dir / "predictions" / f"{label}.jsonl", task, key, rows)
        if problem:
            problems.append(problem)
        elif rows and rows[0].get("gold") is not None:
            scored[label] = (key, rows)
    if problems:
        raise ConfigError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    if task is None or not scored:
        raise ConfigError(f"{run_dir}: no prediction log with golds to export")
    ids = sorted({str(r["id"]) for _, rows in scored.values() for r in rows}, key=lambda i: (len(i), i))
    bad = next((i for i in ids if not ID.fullmatch(i)), None)
    if bad is not None:
        raise ConfigError(f"{run_dir}: question id {json.dumps(bad[:40])} is not a short token; scores files hold "
                          "ids and numbers only, never text")
    position = {example_id: n for n, example_id in enumerate(ids)}
    first_key = next(iter(scored.values()))[0]
    out: dict[str, Any] = {"format": FORMAT, "task": task.name, "split": first_key["split"],
                           "part": first_key["part"], "source": _source(run_dir, scored, commands), "ids": ids}
    rows_out: dict[str, Any] = {}
    for label, (key, rows) in scored.items():
        rows_out[label] = _row(task, key, rows, position, len(ids), out)
    out["rows"] = rows_out
    check_scores(out, f"{run_dir}")
    return out


def _row(task: TaskSpec, key: dict[str, Any], rows: list[dict[str, Any]], position: dict[str, int], size: int,
         out: dict[str, Any]) -> dict[str, Any]:
    models = key.get("models") or {}
    run = {"model": models.get("base", {}).get("name") if models else None, "retriever": key.get("retriever"),
           "k": (key.get("method_config") or {}).get("k"), "seed": key.get("seed"), "limit": key.get("limit")}
    row: dict[str, Any] = {"reference": is_reference(key["method"]), "run": run}
    slots = [position[str(r["id"])] for r in rows]

    def aligned(values: list) -> list:
        full: list = [None] * size
        for slot, value in zip(slots, values):
            full[slot] = value
        return full

    for mode in SCORE_MODES:
        scored = score_rows(task, rows, mode)
        row[mode] = {name: aligned(values)
                     for name, values in task_values(task, scored.predictions, scored.golds, mode).items()}
        if mode == "lenient":
            row["unparsable"] = aligned([int(not is_answer(task, p)) for p in scored.predictions])
            if task.kind == "classification":
                gold = out.setdefault("gold_label", [None] * size)
                for slot, text in zip(slots, scored.golds):
                    gold[slot] = label_index(list(task.labels), text.strip())
    return row


def _source(run_dir: Path, scored: dict[str, tuple[dict[str, Any], list]], commands: list[str] | None) -> dict:
    shas = sorted({str(key.get("data_sha256")) for key, _ in scored.values()})
    if len(shas) > 1:
        raise ConfigError(f"{run_dir}: its logs were made from different data (data_sha256 "
                          f"{', '.join(s[:12] for s in shas)}); export runs of one data version")
    return {"data_sha256": shas[0], "commands": list(commands or []),
            "scored_with": {"personalign": personalign.__version__, "git_revision": git_revision()}}


TOP_FIELDS = ("format", "task", "split", "part", "source", "ids", "gold_label", "rows")
ROW_FIELDS = ("reference", "run", *SCORE_MODES, "unparsable")
VALUE_NAMES = ("label", "error", "rouge-1", "rouge-L")


def check_scores(scores: Any, where: str) -> None:
    """Refuse a scores file holding anything but ids, numbers, row names and settings of strict shapes."""
    def refuse(place: str, what: str) -> None:
        raise ConfigError(f"{where}: {place}: {what}; a scores file holds ids and numbers only")

    def token(place: str, value: Any, pattern: re.Pattern = TOKEN, none: bool = False) -> None:
        if not (value is None and none) and not (isinstance(value, str) and pattern.fullmatch(value)):
            refuse(place, f"{json.dumps(value)[:40]} is not of the allowed shape")

    def fields(place: str, value: Any, allowed: tuple[str, ...]) -> None:
        if not isinstance(value, dict):
            refuse(place, "not an object")
        unknown = [k for k in value if k not in allowed]
        if unknown:
            refuse(place, f"unknown field {json.dumps(unknown[0])[:40]}")

    def numbers(place: str, values: Any, size: int) -> None:
        if not isinstance(values, list) or len(values) != size or any(
                v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))) for v in values):
            refuse(place, f"not a list of {size} numbers (or nulls)")

    fields("$", scores, TOP_FIELDS)
    if scores.get("format") != FORMAT:
        refuse("format", f"not {FORMAT!r}")
    for field in ("task", "split", "part"):
        token(field, scores.get(field))
    ids = scores.get("ids")
    if not isinstance(ids, list):
        refuse("ids", "not a list")
    for n, example_id in enumerate(ids):
        token(f"ids[{n}]", example_id, ID)
    source = scores.get("source")
    fields("source", source, ("data_sha256", "commands", "scored_with"))
    token("source.data_sha256", source.get("data_sha256"), re.compile(r"[0-9a-f]{64}"))
    for n, command in enumerate(source.get("commands", [])):
        token(f"source.commands[{n}]", command, COMMAND)
    fields("source.scored_with", source.get("scored_with", {}), ("personalign", "git_revision"))
    for field, value in source.get("scored_with", {}).items():
        token(f"source.scored_with.{field}", value, none=True)
    if "gold_label" in scores:
        numbers("gold_label", scores["gold_label"], len(ids))
    rows = scores.get("rows")
    fields("rows", rows, tuple(rows) if isinstance(rows, dict) else ())
    for label, row in rows.items():
        token(f"rows key {json.dumps(label)[:40]}", label, LABEL)
        fields(f"rows.{label}", row, ROW_FIELDS)
        if not isinstance(row.get("reference"), bool):
            refuse(f"rows.{label}.reference", "not true or false")
        run = row.get("run", {})
        fields(f"rows.{label}.run", run, RUN_FIELDS)
        for field in ("model", "retriever"):
            token(f"rows.{label}.run.{field}", run.get(field), none=True)
        for field in ("k", "seed", "limit"):
            if run.get(field) is not None and (isinstance(run[field], bool) or not isinstance(run[field], int)):
                refuse(f"rows.{label}.run.{field}", "not a whole number")
        for mode in SCORE_MODES:
            fields(f"rows.{label}.{mode}", row.get(mode), VALUE_NAMES)
            for name, values in row[mode].items():
                numbers(f"rows.{label}.{mode}.{name}", values, len(ids))
        numbers(f"rows.{label}.unparsable", row.get("unparsable"), len(ids))


def scores_path(out_dir: Path, scores: dict[str, Any]) -> Path:
    return Path(out_dir) / f"{scores['task']}-{scores['split']}-{scores['part']}.json"


def write_scores(scores: dict[str, Any], path: Path) -> None:
    """One row a line: compact, and a changed row is a one-line diff."""
    head = {k: v for k, v in scores.items() if k != "rows"}
    lines = ["{"] + [f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}," for k, v in head.items()]
    rows = list(scores["rows"].items())
    lines.append('"rows": {')
    lines += [f"{json.dumps(label)}: {json.dumps(row, separators=(',', ':'))}{',' if n < len(rows) - 1 else ''}"
              for n, (label, row) in enumerate(rows)]
    lines += ["}", "}"]
    with atomic_writer(path) as handle:
        handle.write("\n".join(lines) + "\n")


def export(root: str | Path, out_dir: str | Path, data: str | Path | None = None,
           commands: list[str] | None = None) -> list[Path]:
    """Export every run folder at or below ``root``; return the files written."""
    written = []
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for run_dir in find_run_dirs(root):
        scores = export_run(run_dir, data, commands)
        path = scores_path(Path(out_dir), scores)
        write_scores(scores, path)
        written.append(path)
    return written


def load_scores(path: Path) -> dict[str, Any]:
    """A checked scores file."""
    try:
        scores = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    check_scores(scores, str(path))
    return scores


@dataclass
class RowScores:
    """One row's per-metric statistics (``statistics`` shape) on the examples it has, in one mode."""

    present: np.ndarray  # bool mask over the file's ids
    stats: dict[str, np.ndarray]
    values: dict[str, list]


def row_stats(task: TaskSpec, scores: dict[str, Any], label: str, mode: str) -> RowScores:
    """The statistics of row ``label`` that ``bootstrap_interval`` and ``paired_test`` take."""
    values = scores["rows"][label][mode]
    first = next(iter(values.values()))
    present = np.array([v is not None for v in first])
    stats = {}
    for metric in task.metrics:
        if task.kind == "classification":
            pred = np.array([v for v in values["label"] if v is not None], dtype=int)
            gold = np.array([g for g, p in zip(scores["gold_label"], present) if p], dtype=int)
            stats[metric] = label_stats(metric, pred, gold, len(task.labels))
        elif task.kind == "rating":
            stats[metric] = error_stats(metric, np.array([v for v in values["error"] if v is not None]))
        else:
            stats[metric] = np.array([v for v in values[metric] if v is not None], dtype=float)[:, None]
    return RowScores(present, stats, values)
