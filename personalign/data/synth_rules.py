"""Does an answer follow its synthetic user's rule? A rule-following score that LaMP's metrics cannot give.

LaMP's ROUGE lowercases and drops symbols, so a lowercase or emoji rule is invisible to it; a rating offset
or a label swap shows in the metric only mixed with every other error. ``rule_followed`` checks the rule
itself, on one answer, against the question's rule-blind answer (``personalign data synth`` writes both to
``rules.json``; ``rule_cases`` and ``rule_case`` look them up, as the ``oracle`` does).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personalign.data.lamp_io import find_split_files, iter_questions
from personalign.data.synth import RULES_FILE, SHAPES, Rule, apply_rule, read_rules
from personalign.errors import DataError
from personalign.tasks import get_task
from personalign.tasks.parsing import parse_label, parse_rating

_U_WORD = re.compile(r"\b(?:u|ur)\b", re.IGNORECASE)
_YOU_WORD = re.compile(r"\b(?:you|your)\b", re.IGNORECASE)


@dataclass(frozen=True)
class RuleCase:
    """What ``rule_followed`` needs for one question: the asking user's rule and the rule-blind answer."""

    rule: Rule
    blind: str


def rule_case(rules: dict[str, Any], question_id: str, user_id: str | None, source: str = RULES_FILE) -> RuleCase:
    """The rule of ``user_id`` and the rule-blind answer of ``question_id`` in a rules file (``read_rules``).

    A one-line error naming ``source`` (the rules file) when either is missing.
    """
    answer = rules["answers"].get(question_id)
    rule = rules["users"].get(user_id or "")
    if not isinstance(answer, dict) or "blind" not in answer or not isinstance(rule, dict) or "kind" not in rule:
        raise DataError(source, question_id, "answers" if rule else "users",
                        f"no rule-blind answer or rule for question {question_id} of user {user_id}")
    return RuleCase(rule, str(answer["blind"]))


def rule_cases(data_dir: str | Path, task_name: str, split: str, part: str) -> dict[str, RuleCase]:
    """``{question id: RuleCase}`` for the questions of one split and part of a synthetic task.

    ``fit`` and ``val`` (carved from ``train``) get every train question.
    """
    rules = read_rules(data_dir, task_name)
    source = str(Path(data_dir) / task_name / RULES_FILE)
    questions, _ = find_split_files(data_dir, task_name, split, part)
    return {q.id: rule_case(rules, q.id, q.user_id, source) for q in iter_questions(questions)}


def _strip_end(text: str) -> str:
    """``text`` without trailing whitespace and punctuation (Unicode category P*; emoji are symbols, kept)."""
    end = len(text)
    while end and (text[end - 1].isspace() or unicodedata.category(text[end - 1]).startswith("P")):
        end -= 1
    return text[:end]


def rule_followed(rule: Rule, blind: str, answer: str) -> bool | None:
    """Whether ``answer`` follows ``rule``, the asking user's rule; None when the rule cannot show here.

    ``blind`` is the question's rule-blind answer; ``answer`` a gold or a prediction as the task's scorer
    reads it (ratings and labels are read again with the task's parsers, so raw text works too).
    None when the user has no rule (kind ``none``) or when the rule leaves this blind answer unchanged
    (a rating offset that clipping to 1..5 cancels, a label the user's map does not touch, "u" on a text
    without "you"/"your"). Otherwise, per kind:

    - ``lowercase``: the answer has letters and none is uppercase;
    - ``signoff``: the answer ends with the sign-off, ignoring trailing whitespace and punctuation;
    - ``emoji``: the answer contains the emoji;
    - ``u``: "u" or "ur" is a word of the answer and neither "you" nor "your" is (case-insensitive);
    - ``prefix``: the answer, leading whitespace aside, starts with the prefix ("TEAM at SemEval:");
    - ``suffix``: the answer ends with ": " and the suffix, ignoring trailing whitespace and punctuation;
    - ``offset``: the rating parsed from the answer equals the offset applied to the blind rating (clipped);
    - ``map``: the label parsed from the answer equals the blind label's mapped label.
    """
    kind = rule["kind"]
    if kind == "none":
        return None
    target = apply_rule(rule, blind)
    if target == blind:
        return None
    if kind == "lowercase":
        return any(c.isalpha() for c in answer) and not any(c.isupper() for c in answer)
    if kind == "signoff":
        return _strip_end(answer).endswith(_strip_end(rule["text"]))
    if kind == "emoji":
        return rule["emoji"] in answer
    if kind == "u":
        return bool(_U_WORD.search(answer)) and not _YOU_WORD.search(answer)
    if kind == "prefix":
        return answer.lstrip().startswith(rule["text"])
    if kind == "suffix":
        return _strip_end(answer).endswith(f": {_strip_end(rule['text'])}")
    if kind == "offset":
        return parse_rating(answer, *get_task(SHAPES["rating"]).rating_range) == target
    if kind == "map":
        return parse_label(answer, get_task(SHAPES["label"]).labels) == target
    raise DataError(RULES_FILE, None, "kind", f"unknown rule kind {kind!r}")
