"""A deterministic, LLM-free teacher used when the LLM teacher produces no consistent trajectory.

It writes a short, grounded rationale from the data itself (the user's example, the base answer
and the gold), so small local setups still get a usable SFT set. Runs record which teacher wrote
each trajectory, and the acceptance statistics report both.
"""

from __future__ import annotations

from personalign.tasks.parsing import parse_output
from personalign.tasks.spec import TaskSpec
from personalign.types import ProfileItem


def _snippet(text: str, words: int = 8) -> str:
    parts = " ".join(str(text).split()).split(" ")
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def template_thinking(task: TaskSpec, base_answer: str, item: ProfileItem | None, gold: str) -> str:
    """A 1-3 sentence rationale linking the user's example to the change from base answer to gold."""
    base = parse_output(task, base_answer) or base_answer.strip()
    shown = task.item_output(item) if item else None
    evidence = (f'Similar example: "{_snippet(task.item_document(item))}" -> "{_snippet(shown, 12)}".'
                if item else "No similar example.")
    if task.kind == "rating":
        try:
            direction = "higher than" if float(gold) > float(base) else "lower than" if float(gold) < float(base) \
                else "the same as"
        except ValueError:
            direction = "differently from"
        return f"{evidence} This user would score {direction} the initial {base}."
    if task.kind == "classification":
        verdict = "fits" if base == gold else "does not fit"
        return f"{evidence} The initial label {verdict} this user's labels."
    return f"{evidence} Keep the content, in this user's wording, length and tone."
