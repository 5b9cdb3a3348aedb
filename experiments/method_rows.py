"""Shared by the experiments scripts that inspect an eval run's prediction logs against a reference row."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

from personalign.engine.predictions import read_log
from personalign.eval.scoring import Scored, score_rows
from personalign.tasks.spec import TaskSpec


def parser(description: str) -> argparse.ArgumentParser:
    """--run, --task, --methods and --against, as every such script takes them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--run", required=True, help="an eval run folder (holds predictions/)")
    parser.add_argument("--task", required=True)
    parser.add_argument("--methods", required=True, help="comma-separated prediction logs to inspect")
    parser.add_argument("--against", required=True, help="a reference row scored on the same questions")
    return parser


def scored_against(args: argparse.Namespace, task: TaskSpec) -> Iterator[tuple[str, list[dict], Scored, Scored]]:
    """Per method: its name, its rows, and it and the reference scored on the questions both answered."""
    _, reference_rows = read_log(Path(args.run) / "predictions" / f"{args.against}.jsonl")
    for method in args.methods.split(","):
        _, rows = read_log(Path(args.run) / "predictions" / f"{method}.jsonl")
        ids = [i for i in rows if i in reference_rows]
        yield (method, [rows[i] for i in ids], score_rows(task, [rows[i] for i in ids]),
               score_rows(task, [reference_rows[i] for i in ids]))
