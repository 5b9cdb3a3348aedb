"""POPI's preference summaries (arXiv 2510.17881): the summarizer prompt, the token budget, the
summary-conditioned generator prompt and the RL reward.

The budget is counted in the generator's tokens (it is the generator's context that POPI saves) and
enforced after generation: a summary over budget is cut at the last word that fits.
"""

from __future__ import annotations

from typing import Callable, Sequence

from personalign.retrievers.ranking import most_recent
from personalign.tasks.filters import apply_filter
from personalign.tasks.metrics import example_score
from personalign.tasks.spec import TaskSpec
from personalign.types import Messages, ProfileItem

SUMMARY_PROMPT = (
    "Task: {description}\nOne user's past answers:\n{items}\n\n"
    "In at most {words} words, state this user's preferences and style that predict their next answer "
    "(what they like, how strict or generous they are, how they write). Write only the preferences."
)
CONDITIONED = "This user's preferences: {summary}\n\n{input}"


def summary_messages(task: TaskSpec, profile: Sequence[ProfileItem], items: int, item_max_words: int,
                     budget: int) -> Messages:
    """The summarizer's prompt for the user's ``items`` newest history items."""
    rendered = "\n".join(f"- {task.render_item(i, item_max_words)}" for i in most_recent(list(profile), items))
    words = max(5, int(budget * 0.7))  # about 1.3 tokens a word
    return [{"role": "user", "content": SUMMARY_PROMPT.format(description=task.description, items=rendered, words=words)}]


def enforce_budget(text: str, budget: int, count_tokens: Callable[[str], int]) -> str:
    """``text`` with whitespace collapsed, cut to the longest word prefix of at most ``budget`` tokens."""
    words = text.split()
    joined = " ".join(words)
    if count_tokens(joined) <= budget:
        return joined
    low, high = 0, len(words)  # the largest n with count(words[:n]) <= budget
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(" ".join(words[:middle])) <= budget:
            low = middle
        else:
            high = middle - 1
    return " ".join(words[:low])


def conditioned_input(task_input: str, summary: str) -> str:
    """The generator's input: the preference summary in front of the task input (none: the input alone)."""
    return CONDITIONED.format(summary=summary, input=task_input) if summary else task_input


def answer_score(task: TaskSpec, answer_raw: str, gold: str) -> float:
    """The task metric of the generator's answer (the reward before the length penalty)."""
    return example_score(task, apply_filter(task, "plain", answer_raw, {}).prediction, gold)


def summary_reward(score: float, summary_tokens: int, budget: int, length_penalty: float) -> float:
    """The answer's task metric ``score`` minus ``length_penalty`` times the budget share used (capped at 1)."""
    return score - length_penalty * min(1.0, summary_tokens / max(1, budget))
