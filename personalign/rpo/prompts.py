"""RPO's reflection and teacher prompts, and the ``<think>…</think><personalized>…</personalized>`` format.

The reflection prompt never contains the gold answer: only the query, the base answer and the
user's retrieved history. The teacher prompt (trajectory generation only) does contain it.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from personalign.tasks.filters import parse_reflection  # noqa: F401  (the format lives with the filters)
from personalign.tasks.parsing import rating_values
from personalign.tasks.spec import TaskSpec
from personalign.types import Messages, ProfileItem

_GUIDANCE = {
    "classification": (
        "Study how this user assigns labels in their past examples: which themes and cues make them choose "
        "each label, and how they separate similar labels. Then decide whether the initial label fits this "
        "user's habits, and change it if it does not. Answer with exactly one label from the allowed list."
    ),
    "rating": (
        "Study this user's past reviews and scores to infer how lenient or harsh they are, what they care "
        "about, and how their wording maps to scores. Then adjust the initial score to the score this user "
        "would give. Answer with a single number from 1 to 5."
    ),
    "generation": (
        "Study the style of this user's past examples: length, wording, capitalisation, punctuation, tone "
        "and structure. Then rewrite the initial answer so it keeps its content but reads as if this user "
        "wrote it. Do not copy content from the examples."
    ),
}
FORMAT = (
    "Think briefly inside <think>...</think>, linking the user's examples to concrete changes, then give "
    "only the final answer inside <personalized>...</personalized>."
)


def past_outputs(task: TaskSpec, profile: Sequence[ProfileItem]) -> list[str]:
    """The user's non-empty past answers (labels, scores or texts), in profile order."""
    outputs = [str(task.item_output(item) or "").strip() for item in profile]
    return [o for o in outputs if o]


def median_words(outputs: Sequence[str]) -> int:
    """The median length in words of ``outputs`` (the upper one of an even count); non-empty input."""
    words = sorted(len(o.split()) for o in outputs)
    return words[len(words) // 2]


def user_summary(task: TaskSpec, profile: Sequence[ProfileItem]) -> str:
    """One line of statistics over the user's whole history: label or score counts, or answer length."""
    outputs = past_outputs(task, profile)
    if not outputs:
        return ""
    if task.kind == "generation":
        return f"This user's past answers have {median_words(outputs)} words (median of {len(outputs)})."
    counts = ", ".join(f"{value} x{n}" for value, n in Counter(outputs).most_common(6))
    if task.kind == "rating":
        scores = rating_values(outputs)
        mean = f" (mean {sum(scores) / len(scores):.1f})" if scores else ""
        return f"Scores this user gave before: {counts}{mean}."
    return f"Labels this user chose before: {counts}."


def reflection_prompt(task: TaskSpec, task_input: str, base_answer: str, items: Sequence[ProfileItem],
                      item_max_words: int | None = 40, summary: str = "") -> str:
    """The reflection model's prompt: guidance, the user's statistics and retrieved history, the query, A_base."""
    history = "\n".join(f"- {task.render_item(item, item_max_words)}" for item in items) or "- (no history)"
    stats = f"{summary}\n" if summary else ""
    return (
        f"You will receive a user's query, an initial response and examples from this user's history. "
        f"{_GUIDANCE[task.kind]} {FORMAT}\n\n{stats}User history:\n{history}\n\nUser query: {task_input}\n\n"
        f"Initial response: {base_answer.strip()}"
    )


def reflection_messages(task: TaskSpec, task_input: str, base_answer: str, items: Sequence[ProfileItem],
                        item_max_words: int | None = 40, summary: str = "") -> Messages:
    return [{"role": "user", "content": reflection_prompt(task, task_input, base_answer, items, item_max_words,
                                                          summary)}]


def teacher_messages(task: TaskSpec, task_input: str, base_answer: str, item: ProfileItem | None, gold: str,
                     item_max_words: int | None = 60) -> Messages:
    """Ask a teacher to explain, from one history item, how the base answer becomes the user's real answer."""
    example = task.render_item(item, item_max_words) if item else "(no history)"
    prompt = (
        "A user's query was answered generically, and we know the answer this user actually gave. Using the "
        "user's past example, explain in two or three sentences which traits of the user lead from the initial "
        "response to their answer, as concrete rewriting steps. Do not mention that you were told the answer.\n"
        f"{FORMAT}\n\nUser's past example: {example}\n\nUser query: {task_input}\n\n"
        f"Initial response: {base_answer.strip()}\n\nThe user's actual answer: {gold.strip()}"
    )
    return [{"role": "user", "content": prompt}]


def format_reflection(thinking: str, answer: str) -> str:
    """The training target for one trajectory."""
    return f"<think>{thinking.strip()}</think><personalized>{answer.strip()}</personalized>"
