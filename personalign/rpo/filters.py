"""Trajectory filters: consistency (the teacher reached the user's real answer) and brevity."""

from __future__ import annotations

from personalign.tasks.metrics import rating_value, rouge_scores
from personalign.tasks.parsing import parse_output
from personalign.tasks.spec import TaskSpec


def is_consistent(task: TaskSpec, answer: str, gold: str, rouge_threshold: float = 0.5) -> bool:
    """Equal to the gold (labels, ratings), or ROUGE-1 >= threshold against it (text)."""
    parsed = parse_output(task, answer)
    if task.kind == "classification":
        return parsed == gold.strip()
    if task.kind == "rating":
        low, high = task.rating_range
        try:
            float(parsed)
        except ValueError:
            return False
        return rating_value(parsed, gold, low, high) == float(gold)
    return rouge_scores(parsed, gold)["rouge-1"] >= rouge_threshold


def is_brief(thinking: str, max_words: int) -> bool:
    """Non-empty thinking of at most ``max_words`` words."""
    words = len(thinking.split())
    return 0 < words <= max_words
