"""A deterministic, LLM-free teacher used when the LLM teacher produces no consistent trajectory.

It writes a short, grounded rationale from the data itself (the user's example, the base answer
and the gold), so small local setups still get a usable SFT set. Runs record which teacher wrote
each trajectory, and the acceptance statistics report both.
"""

from __future__ import annotations

from personalign.tasks.parsing import parse_output
from personalign.tasks.spec import TaskSpec
from personalign.types import ProfileItem


def _snippet(text: str, words: int = 12) -> str:
    parts = " ".join(str(text).split()).split(" ")
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def template_thinking(task: TaskSpec, base_answer: str, item: ProfileItem | None, gold: str) -> str:
    """A 1-3 sentence rationale linking the user's example to the change from base answer to gold."""
    base = parse_output(task, base_answer) or base_answer.strip()
    shown = task.item_output(item) if item else None
    evidence = f'The user\'s example "{_snippet(task.item_document(item))}" has the answer "{shown}".' if item else \
        "The user has no close example."
    if task.kind == "rating":
        try:
            direction = "higher" if float(gold) > float(base) else "lower" if float(gold) < float(base) else "the same"
        except ValueError:
            direction = "different"
        return (f"{evidence} Judging by how this user scores, the score should be {direction} than the initial "
                f"{base}, so I adjust it.")
    if task.kind == "classification":
        verdict = "matches" if base == gold else "does not match"
        return f"{evidence} The initial label {verdict} how this user labels similar items, so I choose accordingly."
    return (f"{evidence} I keep the content of the initial answer but adapt wording, length and tone to this "
            f"user's style.")
