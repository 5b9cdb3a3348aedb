"""RPO's task reward: the task metric on the parsed ``<personalized>`` answer, a penalty when malformed.

The penalty must sit at or below the task's worst valid reward. Otherwise a malformed output, which
falls back to A_base at inference, outscores a bad answer and RL learns to break the format (LaMP_3
rewards span -4 to 0, so the old penalty of -1 beat every answer 2 or more off).
"""

from __future__ import annotations

from personalign.errors import ConfigError
from personalign.rpo.prompts import parse_reflection
from personalign.tasks.metrics import example_score, worst_score
from personalign.tasks.parsing import parse_output
from personalign.tasks.spec import TaskSpec


def format_penalty(task: TaskSpec, configured: float | None = None) -> float:
    """``configured``, refused above the task's worst valid reward; by default that worst reward minus 1."""
    worst = worst_score(task)
    if configured is None:
        return worst - 1.0
    if configured > worst:
        raise ConfigError(f"rl.format_penalty {configured} is above {task.name}'s worst valid reward {worst}: "
                          f"malformed outputs would outscore bad answers; use {worst - 1.0} or less")
    return float(configured)


def task_reward(task: TaskSpec, completion: str, gold: str, penalty: float | None = None) -> float:
    """Exact match (tags), negative absolute error (ratings) or ROUGE-1 (text); the format penalty if malformed."""
    parsed = parse_reflection(completion)
    if parsed is None:
        return format_penalty(task, penalty)
    return example_score(task, parse_output(task, parsed[1]), gold)
