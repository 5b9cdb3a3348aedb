"""RPO's task reward: the task metric on the parsed ``<personalized>`` answer, a penalty when malformed."""

from __future__ import annotations

from personalign.rpo.prompts import parse_reflection
from personalign.tasks.metrics import example_score
from personalign.tasks.parsing import parse_output
from personalign.tasks.spec import TaskSpec


def task_reward(task: TaskSpec, completion: str, gold: str, format_penalty: float = -1.0) -> float:
    """Exact match (tags), negative absolute error (ratings) or ROUGE-1 (text); ``format_penalty`` if malformed."""
    parsed = parse_reflection(completion)
    if parsed is None:
        return format_penalty
    return example_score(task, parse_output(task, parsed[1]), gold)
