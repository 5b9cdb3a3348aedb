"""Oracle-hint diagnosis (issue 30): can the backbone apply a user's rule when the prompt states it?

Usage: python -m experiments.synth_hint DATA_DIR --task LaMP_3|LaMP_5 --out RUN_DIR
       [--split time] [--part dev] [--limit N] [--llm llamacpp] [--seed 0]

For each question of a synthetic task (``personalign data synth``; the rules are in DATA_DIR/<task>/rules.json)
the backbone gets three prompts: ``plain`` (the task prompt, as zero-shot sends it), ``rule`` (the user's rule
stated in words before the task prompt), ``rule+blind`` (the rule stated and the rule-blind answer given,
asking the model to apply the rule to it, before the task prompt) and ``input, rule+blind`` (the same after the
task prompt, ending in "Write this user's answer:"). Each answer is parsed with the task's lenient filter and
scored with its metric against the gold. "Rule followed" counts answers that apply the rule strictly
(``personalign.data.synth_rules.rule_followed``: rating: the parsed rating equals the rule applied to the blind
answer, counted only on questions where clipping to 1..5 leaves the rule a change to make; title: the prefix
starts it / ": <suffix>" ends it); "loose" counts every question (rating: the same test on all of them; title:
the rule's text anywhere in the answer). "Blind copied"
counts answers that are exactly the rule-blind answer, "modal" the most common answer and its share.
Answers are cached in RUN_DIR/llm.sqlite (a rerun asks nothing); RUN_DIR gets hint.md (the table) and
answers.jsonl (every answer).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from experiments.synth_rule_following import rule_shown
from personalign.backends import get_llm
from personalign.config import MethodConfig
from personalign.data.lamp_io import load_split
from personalign.data.synth import apply_rule, read_rules
from personalign.data.synth_rules import rule_followed
from personalign.engine import answer_requests
from personalign.eval.runner import sample_examples
from personalign.tasks import get_task
from personalign.tasks.filters import apply_filter
from personalign.tasks.metrics import example_score
from personalign.tasks.parsing import is_answer
from personalign.types import Request

VARIANTS = ("plain", "rule", "rule+blind", "input, rule+blind")


def rule_sentence(rule: dict) -> str:
    """The user's rule in words, as a prompt states it."""
    kind = rule["kind"]
    if kind == "offset":
        offset = int(rule["offset"])
        way = "adds" if offset > 0 else "subtracts"
        return (f"This user always {way} {abs(offset)} {'to' if offset > 0 else 'from'} the rating they would "
                "otherwise give (keeping it between 1 and 5).")
    if kind == "prefix":
        return f"This user always starts titles with '{rule['text']}'."
    if kind == "suffix":
        return f"This user always ends titles with ': {rule['text']}'."
    if kind == "lowercase":
        return "This user always writes in lowercase."
    if kind == "none":
        return "This user answers as anyone would."
    raise ValueError(f"no sentence for rule kind {kind!r}")


def prompt(variant: str, task_input: str, rule: dict, blind: str) -> str:
    """The prompt of one variant for one question."""
    if variant == "plain":
        return task_input
    if variant == "rule":
        return f"{rule_sentence(rule)} {task_input}"
    if variant == "rule+blind":
        return f"{rule_sentence(rule)} The neutral answer is {blind}; apply this user's rule to it. {task_input}"
    return f"{task_input}\n{rule_sentence(rule)} The neutral answer is \"{blind}\". Write this user's answer:"


def loosely_followed(task_kind: str, rule: dict, blind: str, prediction: str) -> bool:
    """The "loose" count (module docstring): any question's rating, or the rule's text anywhere in a title."""
    answer = prediction.strip()
    if task_kind == "rating":
        return answer == apply_rule(rule, blind)
    return bool(rule_shown(rule, answer))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--task", required=True, choices=["LaMP_3", "LaMP_5"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--split", default="time")
    parser.add_argument("--part", default="dev")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm", default="llamacpp")
    args = parser.parse_args()

    task, rules = get_task(args.task), read_rules(args.data, args.task)
    examples, golds = load_split(args.data, task, args.split, args.part)
    examples = sample_examples(examples, args.limit, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    llm = get_llm(args.llm, cache_path=out / "llm.sqlite")
    params = MethodConfig().params(task.max_new_tokens)  # zero-shot's sampling: greedy, the task's token budget
    better = "↓" if task.kind == "rating" else "↑"
    metric = task.metrics[0]
    lines = [f"{args.task} ({args.split}/{args.part}, n = {len(examples)}), lenient parse; {metric} {better}",
             "", f"| prompt | {metric} {better} | rule followed | loose | blind copied | unparsable | "
             "modal answer | n | CPU s |", "|---|---|---|---|---|---|---|---|---|"]
    with open(out / "answers.jsonl", "w", encoding="utf-8") as log:
        for variant in VARIANTS:
            rows = []
            for ex in examples:
                rule, blind = rules["users"][ex.user_id], rules["answers"][ex.id]["blind"]
                rows.append((ex, rule, blind, [{"role": "user", "content": prompt(variant, ex.input, rule, blind)}]))
            start = time.process_time()
            completions = answer_requests([Request(r[3], params) for r in rows], {"base": llm})
            cpu = time.process_time() - start
            scores, follows, changes, loose, copies, unparsable, answers = [], 0, 0, 0, 0, 0, Counter()
            for (ex, rule, blind, messages), completion in zip(rows, completions):
                pred = apply_filter(task, "plain", completion.text, {"prompts": [messages]}).prediction
                gold = golds[ex.id]
                scores.append(example_score(task, pred, gold))
                strict = rule_followed(rule, blind, pred)
                if strict is not None:  # the rule can show on this question
                    changes += 1
                    follows += strict
                loose += loosely_followed(task.kind, rule, blind, pred)
                answers[pred.strip()] += 1
                copies += pred.strip() == blind
                unparsable += not is_answer(task, pred)
                log.write(json.dumps({"variant": variant, "id": ex.id, "rule": rule, "blind": blind, "gold": gold,
                                      "raw": completion.text, "prediction": pred}, ensure_ascii=False) + "\n")
            n = len(rows)
            value = -sum(scores) / n if task.kind == "rating" else sum(scores) / n  # MAE or ROUGE-1
            modal, count = answers.most_common(1)[0]
            shown = modal if len(modal) <= 24 else modal[:21] + "..."
            modal_cell = f"{json.dumps(shown, ensure_ascii=False)} ({count}/{n})"
            lines.append(f"| {variant} | {value:.3f} | {follows}/{changes} | {loose}/{n} | {copies}/{n} | "
                         f"{unparsable}/{n} | {modal_cell} | {n} | {cpu:.1f} |")
    table = "\n".join(lines)
    (out / "hint.md").write_text(table + "\n", encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
