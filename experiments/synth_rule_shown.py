"""How often a run's raw answers show the asking user's own rule (synthetic data of `personalign data synth`).

Usage: python -m experiments.synth_rule_shown DATA RUN_DIR  (RUN_DIR: <out>/<task>/<split>-<part>)
Per prediction log: answers that carry the user's own rule text (prefix, suffix, sign-off, emoji), that are
all lowercase (for lowercase users), and that copy the start of the question's input (an echo).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from personalign.data.lamp_io import read_questions
from personalign.data.synth import read_rules
from personalign.tasks import get_task


def rule_shown(rule: dict, raw: str) -> bool:
    text = rule.get("text") or rule.get("emoji")
    if text:
        return text in raw
    return rule["kind"] == "lowercase" and raw == raw.lower()


def main(data: str, run_dir: str) -> None:
    run = Path(run_dir)
    task_name, (split, part) = run.parent.name, run.name.split("-", 1)
    task, rules = get_task(task_name), read_rules(data, task_name)
    questions = {q.id: q for q in read_questions(Path(data) / task_name / split / f"{part}_questions.json")}
    print("| log | n | own rule shown | input echoed |\n|---|---|---|---|")
    for log in sorted((run / "predictions").glob("*.jsonl")):
        rows = [json.loads(line) for line in log.open()]
        shown = echoed = 0
        for row in rows:
            question, raw = questions[row["id"]], row["raw"].strip()
            shown += rule_shown(rules["users"][question.user_id], raw)
            echoed += raw[:30] == task.query_text(question.input)[:30]
        print(f"| {log.stem} | {len(rows)} | {shown} | {echoed} |")


if __name__ == "__main__":
    main(*sys.argv[1:3])
