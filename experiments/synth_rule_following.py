"""How often a run's answers follow the asking user's rule (synthetic data of `personalign data synth`).

Usage: python -m experiments.synth_rule_following DATA RUN_DIR [RUN_DIR...] [--out FILE]
RUN_DIR: a run folder (<out>/<task>/<split>-<part>, as `personalign eval` writes) or a folder above run folders.

LaMP's metrics cannot see some rules (ROUGE lowercases and drops emoji), so this counts the rule itself. Per
run folder, a markdown table with a line per prediction log (row: method#control) and rule kind of the asking
users (and "all" when there are several), each answer read as the scorer reads it (the lenient filter):
- followed / applicable: answers that follow the user's rule, among the questions where the rule can show
  (`personalign.data.synth_rules.rule_followed`; under `other-user` and `none` it is still the asking user's
  rule), and their share;
- rule text shown: the rule's text (prefix, suffix, sign-off, emoji) anywhere in the answer, or an all-lowercase
  answer for a lowercase rule, among the answers to users with such a rule ("–" for other kinds);
- blind copied: answers that equal the question's rule-blind answer;
- input echoed: answers that start with the first 30 characters of the question's input (its query text);
- stated before the answer: the rule's text (prefix, suffix, sign-off, emoji) in what the method wrote before its
  answer (every completion but the last, and the trace's extra: POPI's and PAG's summaries, RPM's features and
  paths, HYDRA's candidates, RPO's A_base), among the answers to users with such a rule, for methods that make
  more than one LLM call.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from personalign.data.lamp_io import files_sha256, find_split_files, iter_questions
from personalign.data.synth_rules import rule_cases, rule_followed
from personalign.errors import PersonalignError
from personalign.eval.runs import find_run_dirs, run_logs
from personalign.eval.scoring import row_prediction
from personalign.tasks import get_task

ECHO_CHARS = 30
HEADER = ["row", "rule", "followed / applicable", "share", "rule text shown", "blind copied", "input echoed",
          "stated before the answer", "n"]


def rule_shown(rule: dict, answer: str) -> bool | None:
    """The rule's text anywhere in ``answer`` (lowercase rule: the answer is all lowercase); None for other kinds."""
    text = rule.get("text") or rule.get("emoji")
    if text:
        return text in answer
    if rule["kind"] != "lowercase":
        return None
    return any(c.isalpha() for c in answer) and answer == answer.lower()


def stated_before(rule: dict, trace: dict) -> bool | None:
    """The rule's text in the LLM steps before the answer (None: a rule without text, or a single-call method)."""
    text = rule.get("text") or rule.get("emoji")
    steps = list(trace.get("raw_outputs") or [])[:-1]
    if not text or not steps:
        return None
    return text in " ".join(steps) + json.dumps(trace.get("extra") or {}, ensure_ascii=False)


class Counts:
    """The counts of one table line."""

    def __init__(self) -> None:
        self.n = self.applicable = self.followed = self.shown = self.shown_n = self.blind = self.echoed = 0
        self.stated = self.stated_n = 0

    def add(self, followed: bool | None, shown: bool | None, blind: bool, echoed: bool, stated: bool | None) -> None:
        self.n += 1
        self.applicable += followed is not None
        self.followed += bool(followed)
        self.shown_n += shown is not None
        self.shown += bool(shown)
        self.blind += blind
        self.echoed += echoed
        self.stated_n += stated is not None
        self.stated += bool(stated)

    def cells(self) -> list[str]:
        share = f"{self.followed / self.applicable:.2f}" if self.applicable else "–"
        return [f"{self.followed} / {self.applicable}", share,
                f"{self.shown} / {self.shown_n}" if self.shown_n else "–",
                f"{self.blind} / {self.n}", f"{self.echoed} / {self.n}",
                f"{self.stated} / {self.stated_n}" if self.stated_n else "–", str(self.n)]


def run_counts(data: str | Path, run_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, Counts]]]:
    """``(the run's key, {row label: {rule kind or "all": Counts}})`` for one run folder."""
    problems: list[str] = []
    logs = run_logs(run_dir, problems)
    for problem in problems:
        print(f"synth_rule_following: skipped {problem}", file=sys.stderr)
    if not logs:
        raise PersonalignError(f"{run_dir}: no readable prediction logs")
    first_key = next(iter(logs.values()))[0]
    task_name, split, part = first_key["task"], first_key["split"], first_key["part"]
    task = get_task(task_name)
    paths = [p for p in find_split_files(data, task_name, split, part) if p]
    data_sha = files_sha256(paths)
    cases = rule_cases(data, task_name, split, part)
    queries = {q.id: task.query_text(q.input) for q in iter_questions(paths[0])}
    table: dict[str, dict[str, Counts]] = {}
    for label, (key, rows) in logs.items():
        if (key.get("task"), key.get("split"), key.get("part"), key.get("data_sha256")) != \
                (task_name, split, part, data_sha):
            raise PersonalignError(f"{run_dir}/predictions/{label}.jsonl: made from other data than {data} "
                                   f"({task_name} {split}/{part}); pass the data folder the run used")
        lines: dict[str, Counts] = defaultdict(Counts)
        for row in rows:
            case = cases[str(row["id"])]
            answer = row_prediction(task, row)[0].strip()
            counts = (rule_followed(case.rule, case.blind, answer), rule_shown(case.rule, answer),
                      answer == case.blind, answer[:ECHO_CHARS] == queries[str(row["id"])][:ECHO_CHARS],
                      stated_before(case.rule, row.get("trace") or {}))
            lines[case.rule["kind"]].add(*counts)
            lines["all"].add(*counts)
        if len(lines) == 2:  # one kind: its line is the "all" line
            del lines["all"]
        table[label] = dict(sorted(lines.items(), key=lambda kv: (kv[0] in ("none", "all"), kv[0] == "all", kv[0])))
    return first_key, table


def markdown(data: str | Path, run_dir: Path) -> str:
    """The rule-following table of one run folder, with a heading naming it."""
    key, table = run_counts(data, run_dir)
    lines = [f"### {key['task']} {key['split']}/{key['part']} ({run_dir})", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for label, kinds in table.items():
        lines += [f"| {label} | {kind} | " + " | ".join(counts.cells()) + " |" for kind, counts in kinds.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the synthetic data folder the runs used (personalign data synth --out)")
    parser.add_argument("runs", nargs="+", help="run folders, or folders above them")
    parser.add_argument("--out", help="also write the tables to this file")
    args = parser.parse_args(argv)
    try:
        run_dirs = [run for root in args.runs for run in find_run_dirs(root)]
        text = "\n".join(markdown(args.data, run) for run in run_dirs)
    except PersonalignError as exc:
        print(f"synth_rule_following: error: {exc}", file=sys.stderr)
        return 2
    print(text, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
