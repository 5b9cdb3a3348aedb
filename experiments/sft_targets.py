"""How close RPO's SFT answers are to the user's real answers, against the input copied as it is.

Reads a trajectories folder (``trajectories.jsonl`` and ``rl_prompts.jsonl`` of ``personalign train rpo
trajectories``) and prints the task's metrics of the accepted targets' answers and of the query text
(the "echo" answer) against the gold: the ceiling a model trained on those targets could reach.

Usage: .venv/bin/python -m experiments.sft_targets --trajectories runs/rpo-fit-keep/LaMP_7/trajectories --task LaMP_7
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from personalign.rpo.prompts import parse_reflection
from personalign.tasks import get_task
from personalign.tasks.metrics import compute_metrics


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", required=True, help="a trajectories folder of `personalign train rpo`")
    parser.add_argument("--task", required=True)
    args = parser.parse_args()
    task, folder = get_task(args.task), Path(args.trajectories)
    inputs = {row["id"]: row["task_input"] for row in read_jsonl(folder / "rl_prompts.jsonl")}
    rows = [row for row in read_jsonl(folder / "trajectories.jsonl") if row["accepted"] and parse_reflection(row["target"])]
    golds = [row["gold"] for row in rows]
    answers = {"SFT answers": [parse_reflection(row["target"])[1] for row in rows],
               "the input (echo)": [task.query_text(inputs[row["id"]]) for row in rows]}
    metrics = task.metrics
    print(f"| against the gold (n = {len(rows)}) | " + " | ".join(metrics) + " |")
    print("|---|" + "---|" * len(metrics))
    for name, preds in answers.items():
        values = compute_metrics(task, preds, golds)
        print(f"| {name} | " + " | ".join(f"{values[m]:.4f}" for m in metrics) + " |")


if __name__ == "__main__":
    main()
